// Hand-made matchers for the qwen2 and gpt-4o split regexes. See pre_tokenizer.hpp for the patterns.
//
// Each matcher is called at position i and returns the end of the match the regex engine would find
// there: alternatives are tried in order and the first that matches wins; inside an alternative, greedy
// quantifiers take as much as they can and give back one code point at a time until the rest matches.
// Every code point is matched by some alternative (it is a letter, a number, White_Space, or one of
// [^\s\p{L}\p{N}]), so the pieces cover the text with no gaps.
#include "model/tokenizer/pre_tokenizer.hpp"

#include <array>

namespace worker::model {

namespace {

using u32 = std::uint32_t;

struct text_view {
  std::span<const char32_t> cp;
  std::span<const cp_flags> f;
  u32 n;
};

constexpr cp_flags k_upper_like = cp_upper | cp_title | cp_modifier | cp_other_letter | cp_mark;  // Lu Lt Lm Lo M
constexpr cp_flags k_lower_like = cp_lower | cp_modifier | cp_other_letter | cp_mark;            // Ll Lm Lo M

bool is_letter(cp_flags f) { return f & cp_letter; }
bool is_number(cp_flags f) { return f & cp_number; }
bool is_space(cp_flags f) { return f & cp_space; }
bool is_cr_lf(cp_flags f) { return f & cp_cr_lf; }
// [^\r\n\p{L}\p{N}]
bool is_prefix_char(cp_flags f) { return !(f & (cp_cr_lf | cp_letter | cp_number)); }
// [^\s\p{L}\p{N}]
bool is_other(cp_flags f) { return !(f & (cp_space | cp_letter | cp_number)); }

template <typename Pred>
u32 run_end(const text_view& t, u32 i, Pred pred) {
  while (i < t.n && pred(t.f[i])) ++i;
  return i;
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d) at i: length of the match or 0. Case-insensitive the Unicode way: a code
// point matches a letter when their simple case foldings agree (so U+017F 'ſ' matches s).
u32 contraction(const text_view& t, u32 i) {
  if (i >= t.n || t.cp[i] != U'\'') return 0;
  auto folded = [&](u32 k) -> char32_t { return k < t.n ? unicode_fold_case(t.cp[k]) : char32_t{0}; };
  const char32_t a = folded(i + 1);
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return 2;
  const char32_t b = folded(i + 2);
  if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return 3;
  return 0;
}

// ` ?[^\s\p{L}\p{N}]+` followed by a trailing class ([\r\n]* or [\r\n/]*). 0 when no match.
template <typename TrailPred>
u32 punctuation_run(const text_view& t, u32 i, TrailPred trail) {
  u32 j = i;
  if (t.cp[i] == U' ' && i + 1 < t.n && is_other(t.f[i + 1])) j = i + 1;
  if (!is_other(t.f[j])) return 0;
  j = run_end(t, j, is_other);
  while (j < t.n && trail(t.cp[j])) ++j;
  return j;
}

// \s*[\r\n]+ | \s+(?!\S) | \s+ at a White_Space code point i.
u32 whitespace_run(const text_view& t, u32 i) {
  const u32 j = run_end(t, i, is_space);
  // \s*[\r\n]+: \s* gives back until a CR/LF follows; the first success is the last CR/LF of the run.
  for (u32 k = j; k > i; --k) {
    if (is_cr_lf(t.f[k - 1])) return k;
  }
  // \s+(?!\S): the whole run at the end of text, else the run minus its last code point (which then
  // starts the next piece, e.g. the space before a word), if that leaves at least one.
  if (j == t.n) return j;
  if (j - i >= 2) return j - 1;
  return j;  // \s+
}

u32 match_qwen2(const text_view& t, u32 i) {
  if (u32 c = contraction(t, i)) return i + c;
  const cp_flags f = t.f[i];
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (is_letter(f)) return run_end(t, i, is_letter);
  if (is_prefix_char(f) && i + 1 < t.n && is_letter(t.f[i + 1])) return run_end(t, i + 1, is_letter);
  // \p{N}
  if (is_number(f)) return i + 1;
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  if (u32 e = punctuation_run(t, i, [](char32_t c) { return c == U'\r' || c == U'\n'; })) return e;
  if (is_space(f)) return whitespace_run(t, i);
  return i + 1;  // unreachable: every code point is L, N, White_Space or [^\s\p{L}\p{N}]
}

// P? U* W+ C?  (first o200k alternative); 0 when it does not match at i.
u32 o200k_word_lower(const text_view& t, u32 i) {
  const bool can_take_prefix = is_prefix_char(t.f[i]);
  for (u32 p = can_take_prefix ? 1 : 0;; --p) {
    const u32 s = i + p;
    const u32 u_end = run_end(t, s, [](cp_flags f) { return (f & k_upper_like) != 0; });
    // U* gives back one code point at a time until W+ can start.
    for (u32 w = u_end + 1; w-- > s;) {
      if (w < t.n && (t.f[w] & k_lower_like)) {
        const u32 e = run_end(t, w, [](cp_flags f) { return (f & k_lower_like) != 0; });
        return e + contraction(t, e);
      }
    }
    if (p == 0) return 0;
  }
}

// P? U+ W* C?  (second o200k alternative); 0 when it does not match at i.
u32 o200k_word_upper(const text_view& t, u32 i) {
  const bool can_take_prefix = is_prefix_char(t.f[i]);
  for (u32 p = can_take_prefix ? 1 : 0;; --p) {
    const u32 s = i + p;
    const u32 u_end = run_end(t, s, [](cp_flags f) { return (f & k_upper_like) != 0; });
    if (u_end > s) {
      const u32 e = run_end(t, u_end, [](cp_flags f) { return (f & k_lower_like) != 0; });
      return e + contraction(t, e);
    }
    if (p == 0) return 0;
  }
}

u32 match_o200k(const text_view& t, u32 i) {
  if (u32 e = o200k_word_lower(t, i)) return e;
  if (u32 e = o200k_word_upper(t, i)) return e;
  const cp_flags f = t.f[i];
  // \p{N}{1,3}
  if (is_number(f)) {
    u32 e = i + 1;
    while (e < t.n && e < i + 3 && is_number(t.f[e])) ++e;
    return e;
  }
  // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
  if (u32 e = punctuation_run(t, i, [](char32_t c) { return c == U'\r' || c == U'\n' || c == U'/'; })) return e;
  if (is_space(f)) return whitespace_run(t, i);
  return i + 1;  // unreachable, as for qwen2
}

constexpr std::array<std::pair<std::string_view, pre_tokenizer_config>, 2> k_configs{{
    {"qwen2", {pre_tokenizer_kind::qwen2, /*nfc=*/true, /*ignore_merges=*/false}},
    {"gpt-4o", {pre_tokenizer_kind::gpt4o, /*nfc=*/false, /*ignore_merges=*/true}},
}};

}  // namespace

const pre_tokenizer_config* pre_tokenizer_config_for(std::string_view pre) {
  for (const auto& [name, config] : k_configs) {
    if (name == pre) return &config;
  }
  return nullptr;
}

void pre_tokenize(pre_tokenizer_kind kind, std::span<const char32_t> cps, std::span<const cp_flags> flags,
                  std::vector<cp_range>& out) {
  const text_view t{cps, flags, static_cast<u32>(cps.size())};
  u32 i = 0;
  while (i < t.n) {
    const u32 e = kind == pre_tokenizer_kind::qwen2 ? match_qwen2(t, i) : match_o200k(t, i);
    out.push_back({i, e});
    i = e;
  }
}

}  // namespace worker::model
