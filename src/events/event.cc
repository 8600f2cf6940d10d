// Non-template parts of ward's events: failure records, retirement of unbound handlers, Binding.

#include "ward/events/event.h"

#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ward/events/detail/event_core.h"
#include "ward/events/detail/rcu.h"

namespace ward {
namespace detail {

namespace {
// A stack, not a slot: a failure is taken right after the trampoline that stashed it returns, but
// stacking keeps that true even if something in between (a destructor) raises and fails too.
thread_local std::vector<HandlerFailure<>> tls_stash;
}  // namespace

void stash_failure(const NodeBase& n, Error e) noexcept {
  if (e.plugin.empty()) e.plugin = n.binder;
  if (e.function.empty()) e.function = n.event;
  tls_stash.push_back(HandlerFailure<>{n.label, std::move(e)});
}

HandlerFailure<> take_failure() noexcept {
  HandlerFailure<> f = std::move(tls_stash.back());
  tls_stash.pop_back();
  return f;
}

void note_failure(Failures& failed) noexcept { failed.push_back(take_failure()); }

std::optional<HandlerFailure<>> nesting_refusal(const RaiseFrame& f, NestingLimits lim, const std::string& event,
                                                const std::string& owner) {
  std::string detail;
  if (f.depth() > lim.any_event) {
    detail = std::to_string(f.depth()) + " raises in progress (limit " + std::to_string(lim.any_event) + " of any event)";
  } else if (const std::uint32_t same = f.same_event(); same > lim.same_event) {
    detail = "raise " + std::to_string(same) + " of it in progress (limit " + std::to_string(lim.same_event) +
             " of one event)";
  } else {
    return std::nullopt;
  }
  Error e;
  e.kind = Errc::limit;
  e.plugin = owner;
  e.function = event;
  e.detail = "event '" + event + "' nested too deeply on this thread: " + detail + "; see ward::NestingLimits";
  return HandlerFailure<>{"<nesting>", std::move(e)};
}

void stash_exception(const NodeBase& n, std::exception_ptr ex, const char* what_threw) noexcept {
  std::string detail = std::string(what_threw) + " threw: ";
  try {
    std::rethrow_exception(std::move(ex));
  } catch (const std::exception& e) {
    detail += e.what();
  } catch (...) {
    detail += "unknown exception";
  }
  Error e;
  e.kind = Errc::crashed;
  e.detail = std::move(detail);
  stash_failure(n, std::move(e));
}

namespace {

// The caller waited for a grace period: no raise uses `n`. For an async handler, wait for its
// running invocations too (new ones see live == false and do nothing), then destroy the state.
void finish_waiting(NodeBase* n) noexcept {
  if (n->async) wait_until([n] { return n->running.load(std::memory_order_seq_cst) == 0; });
  n->destroy_state_once();
  n->release();
}

// A grace period has passed but we must not wait (deferred path): a synchronous handler's state
// can go now; an async handler's state goes now if no invocation runs, else the last running
// invocation destroys it (it sees `orphan`; Dekker-style seq_cst against run_async).
void finish_orphan(NodeBase* n) noexcept {
  if (n->async) {
    n->orphan.store(true, std::memory_order_seq_cst);
    if (n->running.load(std::memory_order_seq_cst) == 0) n->destroy_state_once();
  } else {
    n->destroy_state_once();
  }
  n->release();
}

}  // namespace

void retire(void* table, void (*free_table)(void*) noexcept, std::vector<NodeBase*> nodes) noexcept {
  if (may_wait()) {
    rcu::synchronize();
    if (table != nullptr) free_table(table);
    for (NodeBase* n : nodes) finish_waiting(n);
    return;
  }
  rcu::defer([table, free_table, nodes = std::move(nodes)]() noexcept {
    if (table != nullptr) free_table(table);
    for (NodeBase* n : nodes) finish_orphan(n);
  });
}

void retire_table(void* table, void (*free_table)(void*) noexcept) noexcept {
  rcu::defer([table, free_table]() noexcept { free_table(table); });
}

void await_retired(NodeBase* n) noexcept {
  // Someone else (unbind_domain, the event's destructor, a deferred unbind) unlinked it and is
  // retiring it; the unbind guarantee still requires that its state is gone when we return.
  if (may_wait()) wait_until([n] { return n->state_gone.load(std::memory_order_acquire); });
}

}  // namespace detail

void Binding::unbind() noexcept {
  if (node_ == nullptr) return;
  core_->unbind(node_);
  node_->release();
  node_ = nullptr;
  core_.reset();
}

const std::string& Binding::label() const noexcept {
  static const std::string empty;
  return node_ != nullptr ? node_->label : empty;
}

}  // namespace ward
