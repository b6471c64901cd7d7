// Stop strings across token boundaries: text that could still become a stop string is held back; the
// stop string itself is never emitted; text that turns out not to be a stop is released unchanged.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "model/tokenizer/stop_matcher.hpp"

using namespace worker::model;

namespace {

struct run_result {
  std::string emitted;
  std::vector<std::string> pieces;
  std::optional<std::size_t> stop;
};

run_result feed(std::vector<std::string> stops, const std::vector<std::string>& chunks) {
  stop_matcher m(std::move(stops));
  run_result r;
  for (const auto& c : chunks) {
    auto out = m.push(c);
    r.pieces.push_back(out.text);
    r.emitted += out.text;
    if (out.stop) r.stop = out.stop;
  }
  if (!r.stop) r.emitted += m.flush();
  return r;
}

}  // namespace

TEST_CASE("a stop string split over several tokens stops generation and is not emitted") {
  const auto r = feed({"</answer>"}, {"The answer is 4.", "</", "ans", "wer>", " ignored"});
  CHECK(r.stop == 0u);
  CHECK(r.emitted == "The answer is 4.");
  // While "</ans" could still become the stop string, nothing of it was released.
  CHECK(r.pieces[1].empty());
  CHECK(r.pieces[2].empty());
}

TEST_CASE("held-back text is released as soon as it can no longer become a stop string") {
  const auto r = feed({"STOP"}, {"go ST", "ART now"});
  CHECK_FALSE(r.stop.has_value());
  CHECK(r.pieces[0] == "go ");
  CHECK(r.pieces[1] == "START now");
  CHECK(r.emitted == "go START now");
}

TEST_CASE("the held tail is released at the end of generation") {
  const auto r = feed({"\n\nUser:"}, {"bye\n", "\nUs"});
  CHECK_FALSE(r.stop.has_value());
  CHECK(r.pieces[0] == "bye");
  CHECK(r.emitted == "bye\n\nUs");
}

TEST_CASE("the earliest stop string wins; a stop inside one chunk cuts the chunk") {
  const auto r = feed({"world", "lo w"}, {"hello world"});
  CHECK(r.stop == 1u);  // "lo w" starts at 3, before "world" at 6
  CHECK(r.emitted == "hel");
  const auto r2 = feed({"##"}, {"##start"});
  CHECK(r2.stop == 0u);
  CHECK(r2.emitted.empty());
}

TEST_CASE("stop strings match multi-byte text on code point boundaries") {
  const auto r = feed({"停止"}, {"好的\xE5\x81", "\x9C", "\xE6\xAD\xA2 more"});
  // The stream decoder never splits code points, but even byte-wise input must not leak the stop prefix.
  CHECK(r.stop == 0u);
  CHECK(r.emitted == "好的");
  const auto r2 = feed({"🚀🚀"}, {"a🚀", "b"});
  CHECK(r2.emitted == "a🚀b");
}

TEST_CASE("after a stop, further input is ignored and nothing is flushed") {
  stop_matcher m({"x"});
  CHECK(m.push("abx").text == "ab");
  CHECK(m.stopped());
  const auto after = m.push("more");
  CHECK(after.text.empty());
  CHECK(after.stop == 0u);
  CHECK(m.flush().empty());
}

TEST_CASE("empty stop strings are rejected") { CHECK_THROWS_AS(stop_matcher({"ok", ""}), std::invalid_argument); }

TEST_CASE("no stop strings: everything passes straight through") {
  const auto r = feed({}, {"a", "b"});
  CHECK(r.pieces == std::vector<std::string>{"a", "b"});
}
