// Harmony output parsing: analysis and final channels separated, headers never leak as text, UTF-8 split
// across tokens kept whole, <|end|> ends a message but not the generation, <|return|>/<|call|> do.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "model/chat/harmony_parser.hpp"
#include "tests/tokenizer/test_vocab.hpp"

using namespace worker::model;

namespace {

struct fixture {
  tokenizer_vocab v = testing::make_test_vocab({.pre = "gpt-4o", .merges = {}, .specials = testing::chat_specials()});
  tokenizer tok{v};

  // Model output written as text with markers, tokenized with special parsing (as the model's ids would be).
  std::vector<token_id> ids(const std::string& text) const { return tok.encode(text, special_tokens::parse); }
};

struct collected {
  std::map<harmony_channel, std::string> text;
  std::vector<harmony_event::kind> kinds;
  std::vector<std::string> recipients;
};

collected run(harmony_parser& p, const std::vector<token_id>& ids, bool finish = true) {
  collected c;
  auto take = [&](std::vector<harmony_event> events) {
    for (auto& e : events) {
      if (e.type == harmony_event::kind::text) {
        c.text[e.channel] += e.text;
      } else {
        c.kinds.push_back(e.type);
        c.recipients.push_back(e.recipient);
      }
    }
  };
  for (token_id id : ids) take(p.push(id));
  if (finish) take(p.finish());
  return c;
}

}  // namespace

TEST_CASE("analysis and final channels are separated; headers are not text") {
  fixture f;
  harmony_parser p(f.tok);
  const auto c = run(p, f.ids("<|channel|>analysis<|message|>User greets. Reply.<|end|>"
                              "<|start|>assistant<|channel|>final<|message|>Hello! 👋<|return|>"));
  CHECK(c.text.at(harmony_channel::analysis) == "User greets. Reply.");
  CHECK(c.text.at(harmony_channel::final) == "Hello! 👋");
  CHECK(c.text.count(harmony_channel::other) == 0);
  CHECK(c.kinds == std::vector<harmony_event::kind>{harmony_event::kind::message_end, harmony_event::kind::done});
  CHECK(p.done());
}

TEST_CASE("a tool call: commentary channel, recipient and constraint read from the header") {
  fixture f;
  harmony_parser p(f.tok);
  const auto c = run(p, f.ids("<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Tokyo\"}<|call|>"));
  CHECK(c.text.at(harmony_channel::commentary) == "{\"city\":\"Tokyo\"}");
  REQUIRE(c.kinds == std::vector<harmony_event::kind>{harmony_event::kind::tool_call});
  CHECK(c.recipients[0] == "functions.get_weather");
}

TEST_CASE("text split inside a UTF-8 character across tokens comes out whole") {
  fixture f;
  harmony_parser p(f.tok, harmony_parser::start::final_message);
  // Byte tokens only (the test vocabulary has no merges): 🚀 arrives as four separate tokens.
  const auto c = run(p, f.ids("\xF0\x9F\x9A\x80 ok<|return|>"));
  CHECK(c.text.at(harmony_channel::final) == "\xF0\x9F\x9A\x80 ok");
}

TEST_CASE("starting inside a prefilled final message; finish flushes without a return token") {
  fixture f;
  harmony_parser p(f.tok, harmony_parser::start::final_message);
  const auto c = run(p, f.ids("more text"));
  CHECK(c.text.at(harmony_channel::final) == "more text");
  CHECK(c.kinds.empty());
  CHECK(p.done());
}

TEST_CASE("tokens after the end of generation are ignored") {
  fixture f;
  harmony_parser p(f.tok);
  const auto c = run(p, f.ids("<|channel|>final<|message|>a<|return|>b<|start|>"));
  CHECK(c.text.at(harmony_channel::final) == "a");
}
