// Deterministic tokenizer test corpus (>= 2,000 strings): many scripts, emoji (ZWJ, skin tones, flags,
// tags), combining marks, code, numbers of every length, whitespace runs and CR/LF/tab mixes,
// contractions, very long words, decomposed (non-NFC) text, special-token strings, and seeded random mixes
// of all of these. Every string is valid Unicode (no lone surrogates), so it survives UTF-8 and JSON.
//
// Used by tokenizer_reference.mjs; `node tokenizer_corpus.mjs` prints the count per category.
// Characters are chosen from Unicode <= 15.0 so that ICU 72 (ours), node's ICU and llama.cpp's tables agree
// on their categories; docs/tokenizer.md explains why newer code points are left out.

// mulberry32: a tiny seeded PRNG, so the corpus is the same on every machine and run.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SCRIPTS = {
  latin: [
    "The quick brown fox jumps over the lazy dog.",
    "Voix ambiguë d'un cœur qui, au zéphyr, préfère les jattes de kiwis.",
    "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg.",
    "Tiếng Việt có dấu: Chào bạn, hôm nay thế nào?",
    "Zażółć gęślą jaźń. Łódź, Kraków, Gdańsk.",
    "Pijamalı hasta yağız şoföre çabucak güvendi. İstanbul ıspanak",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "El pingüino Wenceslao hizo kilómetros bajo exhaustiva lluvia y frío, añoraba a su querido cachorro.",
    "Ærøskøbing, Ålesund, Øresund; straße STRASSE ß ẞ",
    "ǅemal ǈubica ǋegoš (titlecase digraphs) ﬁne ﬂow ﬀ",
    "Íslenska: Þórður og Ægir fóru í ferðalag.",
    "Română: Știință și țară, Ș Ț ș ț",
  ],
  greek: ["Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.", "Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο."],
  cyrillic: [
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів!",
    "Љубазни фењерџија чађавог лица хоће да ми покаже штос.",
  ],
  chinese: ["我能吞下玻璃而不伤身体。", "天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。", "繁體中文與简体中文混合測試", "人工智能正在改变世界，大语言模型的分词器很重要。"],
  japanese: ["いろはにほへと ちりぬるを わかよたれそ つねならむ", "カタカナとひらがなと漢字を混ぜた文章です。", "ｶﾀｶﾅ（半角）とカタカナ（全角）", "東京都渋谷区で寿司を食べました！"],
  korean: ["키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다.", "다람쥐 헌 쳇바퀴에 타고파", "한국어 토크나이저 테스트입니다"],
  arabic: ["نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق", "العربية: مرحبا بالعالم! ١٢٣٤٥٦٧٨٩٠", "اَلْعَرَبِيَّةُ مع التشكيل"],
  hebrew: ["דג סקרן שט בים מאוכזב ולפתע מצא חברה", "עִבְרִית עם ניקוד: שָׁלוֹם", "Hebrew and English: שלום world"],
  devanagari: ["ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम", "हिन्दी में अंक: ०१२३४५६७८९", "क्षत्रिय ज्ञान श्री"],
  thai: ["เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน", "ภาษาไทยไม่มีช่องว่างระหว่างคำ ๑๒๓"],
  other_scripts: [
    "বাংলা ভাষা সুন্দর", "தமிழ் மொழி", "ქართული ენა", "Հայերեն լեզու", "ግዕዝ ፊደል", "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "ꦧꦱꦗꦮ", "ᠮᠣᠩᠭᠣᠯ", "བོད་སྐད་", "ಕನ್ನಡ ಭಾಷೆ", "తెలుగు భాష", "മലയാളം", "ગુજરાતી", "ਪੰਜਾਬੀ", "සිංහල", "ພາສາລາວ", "ភាសាខ្មែរ", "မြန်မာဘာသာ",
    "𝕳𝖊𝖑𝖑𝖔 𝒲𝑜𝓇𝓁𝒹 𝟙𝟚𝟛", "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３", "ｈｅｌｌｏ，ｗｏｒｌｄ！",
  ],
};

const EMOJI = [
  "😀", "🚀", "❤️", "❤", "✨", "🎉🎊", "👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿",
  "👨‍👩‍👧‍👦", "👩‍❤️‍💋‍👨", "🧑🏽‍💻", "👩🏿‍🔬", "🏳️‍🌈", "🏴‍☠️", "🇺🇸", "🇯🇵🇰🇷🇩🇪", "🇪🇺",
  "1️⃣", "#️⃣", "*️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🏴󠁧󠁢󠁷󠁬󠁳󠁿", "☺︎", "☺️", "🫠", "🥲", "🐈‍⬛", "🧔🏻‍♂️", "👁️‍🗨️",
];

const COMBINING = [
  "e\u0301", "a\u0300\u0301\u0302", "n\u0303o\u0308", "Z\u0335\u0351a\u0336\u0352l\u0337\u0353g\u0338\u0354o\u0339\u0355",
  "\u0301leading mark", " \u0301after space", "1\u20e3 2\u20dd", "x\u0323\u0302 x\u0302\u0323", "ก\u0e49\u0e33",
  "\u093f\u0915", "a\u200db", "a\u200cb", "i\u0307", "\u0654\u0627", "q\u0307\u0323", "ᄀ\u1161\u11a8",
];

const CODE = [
  "int main(int argc, char** argv) {\n    return 0;\n}\n",
  "def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n\treturn -x\n",
  "const re = /[a-z]+\\d{2,3}/gu; // comment\nconsole.log(`tpl ${a + b}`);",
  "fn main() { let v: Vec<u32> = (0..10).map(|x| x * 2).collect(); println!(\"{:?}\", v); }",
  "for f in *.txt; do echo \"$f\" | sed 's/a/b/g' >> out.log 2>&1; done",
  "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
  "<div class=\"x\">&amp; &lt;tag&gt;</div>\r\n<br/>",
  "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
  "#include <vector>\r\n#define MAX(a,b) ((a)>(b)?(a):(b))\r\n",
  "    x = [i for i in range(100) if i % 3 == 0]  # list comprehension",
  "a+=1;b-=2;c*=3;d/=4;e%=5;f<<=6;g>>=7;h&&=i||j??k",
  "http://example.com/path/to/file.html?q=1&r=2#frag https://a.b/c//d",
  "C:\\Users\\name\\Documents\\file.txt /usr/local/bin/",
  "__init__ __name__ == '__main__' snake_case camelCase PascalCase SCREAMING_CASE kebab-case",
  "if(x!=y){return;}else{while(1){}}",
  "\t\t\tindented with tabs\n        indented with spaces\n",
];

const WORDS = ["the", "tokenizer", "Hello", "WORLD", "café", "naïve", "über", "Straße", "日本", "東京", "서울", "Москва", "مرحبا", "שלום", "नमस्ते", "สวัสดี", "ÉCOLE", "HTTPServer", "iPhone", "McDonald", "o'clock", "rock'n'roll", "x86_64", "v2.0", "GPT-4o", "Qwen2.5"];

const SPECIALS = [
  "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|box_end|>", "<|vision_pad|>", "<|image_pad|>",
  "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
  "<tool_response>", "<think>", "</think>",
  "<|startoftext|>", "<|return|>", "<|constrain|>", "<|channel|>", "<|start|>", "<|end|>", "<|message|>", "<|call|>",
  "<|reserved_200000|>", "<|reserved_200013|>", "<|endofprompt|>", "[PAD151665]", "[PAD200100]",
];

const SEPARATORS = [" ", "  ", "\n", "\r\n", "\t", " \n", "\n\n", "", ", ", ". ", " - ", "\u00a0", "\u3000", "/", "'"];

// Code points from many general categories (all assigned in Unicode <= 15.0) for random strings.
const CATEGORY_SAMPLES = [
  "A", "Z", "É", "Ω", "Ж", "Ա", "a", "z", "é", "ω", "ж", "ß", "ǅ", "ᾈ", "ʰ", "ˆ", "ー", "々", "ꜜ",
  "中", "あ", "ア", "한", "ا", "א", "क", "ก", "ª", "º", "\u0301", "\u0308", "\u093e", "\u0903", "\u20dd", "\u0488",
  "0", "7", "٣", "९", "๓", "１", "Ⅻ", "ⅷ", "〇", "²", "½", "①", "𝟘", "_", "‿", "-", "–", "—", "(", ")", "[", "]", "{", "}",
  "«", "»", "“", "”", "!", "?", ".", ",", ":", ";", "'", "\"", "#", "%", "&", "*", "@", "\\", "/", "¡", "¿", "。", "、",
  "+", "<", "=", ">", "|", "~", "±", "×", "÷", "∑", "$", "€", "£", "¥", "₹", "^", "`", "¨", "¯", "©", "®", "°", "♥", "☃", "😀",
  " ", " ", " ", " ", "\u00a0", "\u1680", "\u2000", "\u2003", "\u2009", "\u200a", "\u202f", "\u205f", "\u3000", "\u2028", "\u2029",
  "\t", "\n", "\r", "\u000b", "\u000c", "\u0085", "\u0000", "\u0001", "\u001f", "\u007f", "\u200b", "\u200c", "\u200d", "\u2060",
  "\ufeff", "\u00ad", "\u061c", "\u200e", "\u202e", "ſ", "K", "Å", "Ω",
];

function* scriptStrings() {
  for (const [name, list] of Object.entries(SCRIPTS)) {
    for (const s of list) {
      yield [name, s];
      yield [name, " " + s];
      yield [name, s.toUpperCase()];
      yield [name, s.replace(/ /g, "\n")];
    }
  }
}

function* emojiStrings() {
  for (const e of EMOJI) {
    yield ["emoji", e];
    yield ["emoji", `Hi ${e}!`];
    yield ["emoji", `${e}${e}${e}`];
    yield ["emoji", `${e} ${e}\n${e}`];
  }
  yield ["emoji", EMOJI.join("")];
  yield ["emoji", EMOJI.join(" ")];
}

function* combiningStrings() {
  for (const c of COMBINING) {
    yield ["combining", c];
    yield ["combining", `word${c}word`];
    yield ["combining", ` ${c} ${c.toUpperCase()}`];
  }
}

function* codeStrings() {
  for (const c of CODE) {
    yield ["code", c];
    yield ["code", c.replace(/\n/g, "\r\n")];
    yield ["code", c.replace(/    /g, "\t")];
  }
}

function* numberStrings(r) {
  for (let len = 1; len <= 40; ++len) {
    let digits = "";
    for (let i = 0; i < len; ++i) digits += String(Math.floor(r() * 10));
    yield ["numbers", digits];
    yield ["numbers", `x${digits}y`];
    yield ["numbers", ` ${digits} `];
    yield ["numbers", `-${digits}.${digits.slice(0, 3)}e+${len}`];
  }
  for (const s of ["1,234,567.89", "3.14159265358979", "0x1F 0b1010 0o17", "1e-10", "2024-06-01", "12:30:45",
                   "١٢٣٤٥", "०१२३", "１２３４", "Ⅻ ⅷ", "²³¹ ½ ¾", "①②③", "𝟘𝟙𝟚", "〇一二", "v1.2.3-rc4", "$1,000,000", "50%", "+1 (555) 123-4567"]) {
    yield ["numbers", s];
  }
}

function* whitespaceStrings() {
  const ws = [" ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\u2003", "\u0085", "\u2028", "\u000b", "\u000c", "\ufeff", "\u200b"];
  for (const w of ws) {
    for (const n of [1, 2, 3, 7]) {
      const run = w.repeat(n);
      yield ["whitespace", `${run}word`];
      yield ["whitespace", `word${run}`];
      yield ["whitespace", `a${run}b`];
      yield ["whitespace", `a${run} b`];
      yield ["whitespace", run];
    }
  }
  for (let n = 1; n <= 24; ++n) {
    yield ["whitespace", " ".repeat(n) + "x" + " ".repeat(n)];
    yield ["whitespace", "x\n" + " ".repeat(n) + "y"];
    yield ["whitespace", "\n".repeat(n)];
  }
  for (const s of ["\r\n\r\n", "\n\r", " \r\n \r\n ", "\t\n\t\n", "a \n b", "a\t \n\tb", "line1\rline2", "  \n  \n  x", "x \t ", " \u00a0 ", "\n \n", "end \n"]) {
    yield ["whitespace", s];
  }
}

function* contractionStrings() {
  const bases = ["it", "I", "you", "they", "she", "we", "He", "YOU", "é", "日本", "90", "x"];
  const tails = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'LL", "'D", "'x", "'", "''", "'ſ", "'sa", "'lla"];
  for (const b of bases) for (const t of tails) yield ["contractions", `${b}${t} ok`];
  for (const s of ["don't", "won't", "can't", "I'm", "y'all'd've", "'s", "'twas", "rock 'n' roll", "O'Neil's", "l'été", "’s curly", "it’s", "' s", " 's"]) {
    yield ["contractions", s];
  }
}

function* longStrings(r) {
  yield ["long", "a".repeat(1000)];
  yield ["long", "supercalifragilisticexpialidocious".repeat(40)];
  yield ["long", "Pneumonoultramicroscopicsilicovolcanoconiosis "];
  yield ["long", "中文没有空格".repeat(100)];
  yield ["long", "7".repeat(500)];
  yield ["long", "!?".repeat(300)];
  yield ["long", " ".repeat(600) + "x"];
  yield ["long", "\n".repeat(300)];
  yield ["long", "ab".repeat(700)];
  yield ["long", "é".repeat(400)];
  yield ["long", "👍🏽".repeat(100)];
  yield ["long", "ＡＢＣ".repeat(100)];
  let s = "";
  for (let i = 0; i < 3000; ++i) s += String.fromCharCode(97 + Math.floor(r() * 26));
  yield ["long", s];
  s = "";
  for (let i = 0; i < 2000; ++i) s += CATEGORY_SAMPLES[Math.floor(r() * CATEGORY_SAMPLES.length)];
  yield ["long", s];
}

function* decomposedStrings() {
  const samples = ["café", "naïve résumé", "Ångström", "한국어 조선말", "Tiếng Việt", "Ελληνικά ἄλφα", "ñandú", "Ｗｉｄｅ ﬁ",
                   "\u212b \u2126 \u212a", "\u1e9b\u0323", "x\u0323\u0302", "e\u0302\u0323", "ᄒ\u1161\u11ab", "\u0958\u0959"];
  for (const s of samples) {
    yield ["decomposed", s.normalize("NFD")];
    yield ["decomposed", s.normalize("NFC")];
    yield ["decomposed", s.normalize("NFKD")];
    yield ["decomposed", `${s.normalize("NFD")} ${s.normalize("NFC")}`];
  }
}

function* specialStrings() {
  for (const sp of SPECIALS) {
    yield ["special", sp];
    yield ["special", `Hello${sp}world`];
    yield ["special", ` ${sp} `];
    yield ["special", `${sp}${sp}`];
    yield ["special", `\n${sp}\n`];
    yield ["special", sp.slice(0, -1)];
    yield ["special", sp.slice(1)];
  }
  yield ["special", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"];
  yield ["special", "<|start|>assistant<|channel|>final<|message|>Hi<|return|>"];
  yield ["special", "<|<|im_end|>|>"];
  yield ["special", "<|im_start|><|im_start|>x<|im_end|>"];
  yield ["special", "<|im_end|"];
  yield ["special", "<||>"];
}

function* randomMixes(r, count) {
  const pools = [
    ...Object.values(SCRIPTS).flat(), ...EMOJI, ...COMBINING, ...CODE, ...WORDS, ...SPECIALS,
  ];
  for (let k = 0; k < count; ++k) {
    const n = 1 + Math.floor(r() * 6);
    let s = "";
    for (let i = 0; i < n; ++i) {
      const p = pools[Math.floor(r() * pools.length)];
      // A random slice of a fragment, cut at code point boundaries.
      const cps = Array.from(p);
      const a = Math.floor(r() * cps.length);
      const b = a + 1 + Math.floor(r() * (cps.length - a));
      s += cps.slice(r() < 0.5 ? 0 : a, b).join("");
      s += SEPARATORS[Math.floor(r() * SEPARATORS.length)];
    }
    yield ["mix", s];
  }
  for (let k = 0; k < count; ++k) {
    const n = 1 + Math.floor(r() * 24);
    let s = "";
    for (let i = 0; i < n; ++i) s += CATEGORY_SAMPLES[Math.floor(r() * CATEGORY_SAMPLES.length)];
    yield ["random_chars", s];
  }
}

// [{category, text}], deterministic, with duplicates removed (first occurrence kept).
export function buildCorpus() {
  const r = rng(0x5eed2024);
  const out = [];
  const seen = new Set();
  const gens = [scriptStrings(), emojiStrings(), combiningStrings(), codeStrings(), numberStrings(r), whitespaceStrings(),
                contractionStrings(), longStrings(r), decomposedStrings(), specialStrings(), randomMixes(r, 700)];
  for (const g of gens) {
    for (const [category, text] of g) {
      if (seen.has(text)) continue;
      seen.add(text);
      out.push({ category, text });
    }
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const corpus = buildCorpus();
  const counts = {};
  for (const c of corpus) counts[c.category] = (counts[c.category] ?? 0) + 1;
  console.log(JSON.stringify({ total: corpus.length, counts }, null, 1));
}
