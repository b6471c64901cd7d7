// Job setup (see job_setup.hpp).
#include "actors/job_setup.hpp"

#include <cstdio>
#include <random>

#include "protocol/codec.hpp"

namespace worker::actors {
namespace {

std::uint64_t random_u64() {
  static thread_local std::mt19937_64 rng{[] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }()};
  return rng();
}

model::chat_role to_model(protocol::chat_role r) {
  switch (r) {
    case protocol::chat_role::system: return model::chat_role::system;
    case protocol::chat_role::developer: return model::chat_role::developer;
    case protocol::chat_role::user: return model::chat_role::user;
    case protocol::chat_role::assistant: return model::chat_role::assistant;
  }
  return model::chat_role::user;
}

model::reasoning_effort to_model(protocol::reasoning_effort e) {
  switch (e) {
    case protocol::reasoning_effort::low: return model::reasoning_effort::low;
    case protocol::reasoning_effort::medium: return model::reasoning_effort::medium;
    case protocol::reasoning_effort::high: return model::reasoning_effort::high;
  }
  return model::reasoning_effort::medium;
}

protocol::error_reply invalid_field(std::string field, std::string problem) {
  auto e = protocol::make_error(protocol::error_code::invalid_request, field + " " + problem);
  e.fields = {{std::move(field), std::move(problem)}};
  return e;
}

std::variant<std::vector<token_id>, protocol::error_reply> render(const model_bundle& model,
                                                                  const protocol::submit_request& request) {
  std::vector<model::token_id> ids;
  if (request.prompt) {
    // Raw text: special-token text stays plain text (a prompt cannot inject control tokens).
    ids = model.tokenizer.encode(*request.prompt, model::special_tokens::plain);
  } else {
    if (!model.chat) return invalid_field("messages", "this model has no chat format; send a prompt");
    model::chat_request chat;
    for (const auto& m : request.messages) chat.messages.push_back({to_model(m.role), m.content});
    chat.assistant_prefill = request.assistant_prefill;
    chat.effort = to_model(request.effort);
    chat.current_date = request.date;
    try {
      ids = model::chat_render(model.tokenizer, *model.chat, chat).ids;
    } catch (const model::chat_error& e) {
      return invalid_field("messages", e.what());
    }
  }
  return std::vector<token_id>(ids.begin(), ids.end());  // model ids are uint32, engine ids int32
}

}  // namespace

std::uint64_t random_seed() { return random_u64(); }

std::string new_correlation_id() {
  const std::uint64_t a = random_u64();
  const std::uint64_t b = random_u64();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-4%03x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>((a >> 16) & 0xffff), static_cast<unsigned>(a & 0x0fff),
                static_cast<unsigned>(0x8000 | ((b >> 48) & 0x3fff)),
                static_cast<unsigned long long>(b & 0xffffffffffffull));
  return buf;
}

std::variant<job_plan, protocol::error_reply> plan_job(const model_bundle& model, const protocol::submit_request& request) {
  auto rendered = render(model, request);
  if (auto* e = std::get_if<protocol::error_reply>(&rendered)) return std::move(*e);
  auto& tokens = std::get<std::vector<token_id>>(rendered);
  const auto& s = request.sampling;
  if (tokens.empty()) {
    auto e = protocol::make_error(protocol::error_code::invalid_request, "the prompt produces no tokens");
    e.fields = {{request.prompt ? "prompt" : "messages", "must produce at least one token"}};
    return e;
  }
  if (tokens.size() + std::uint64_t{s.max_tokens} > model.context_length) {
    return protocol::make_error(protocol::error_code::context_overflow,
                                std::to_string(tokens.size()) + " prompt tokens + max_tokens " +
                                    std::to_string(s.max_tokens) + " exceed the context of " +
                                    std::to_string(model.context_length) + " tokens");
  }
  job_plan plan;
  plan.job_id = request.job_id;
  plan.prompt = std::move(tokens);
  plan.max_tokens = s.max_tokens;
  plan.stop_strings = s.stop;
  plan.sampling.temperature = s.temperature;
  plan.sampling.top_k = s.top_k;
  plan.sampling.top_p = s.top_p;
  plan.sampling.min_p = s.min_p;
  plan.sampling.repetition_penalty = s.repetition_penalty;
  plan.sampling.presence_penalty = s.presence_penalty;
  plan.sampling.frequency_penalty = s.frequency_penalty;
  plan.sampling.seed = s.seed ? *s.seed : random_seed();
  plan.harmony = !request.prompt && model.chat == model::chat_format_kind::harmony;
  plan.prefilled = plan.harmony && request.assistant_prefill.has_value();
  return plan;
}

}  // namespace worker::actors
