// The vocabulary of ward's events: the plain types Event's API speaks in (who binds, how, what a
// handler may return, what the owner decides, what a raise reports, how deeply raises nest). The
// Event and Binding classes and the contract they keep are in event.h; include that, not this.
//
// These are ordinary value types: no shared state, no locking; copy or move them freely. They
// live apart from event.h only because the event core (detail/event_core.h) needs them too.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "ward/core/error.h"

namespace ward {

// Who asks to bind: host code (domain == nullptr) or an extension running in a domain. `domain` is
// opaque to events: it is only compared by identity (Event::unbind_domain) and handed to the
// authorizer.
struct Binder {
  std::string name;
  const void* domain = nullptr;
};

enum class Order { first, last };

struct BindOptions {
  // Unique per event when non-empty. Used by before/after and, if set, in failure reports.
  std::string name;
  // first: in front of every handler bound so far; last: after them. Ignored when before/after is
  // set.
  Order order = Order::last;
  // Immediately before / immediately after the binding with that name (misuse error if no binding
  // has that name). Both may be set if `after` precedes `before`; the handler then goes right after
  // `after`.
  std::string before, after;
  // Run on the worker pool with copies of the arguments; the raise neither waits for it nor
  // combines its result. Its guard still runs on the raising thread.
  bool async = false;
};

// A handler may return R, Result<R> or Handled<R> (or the same with a type convertible to R).
// `stop` ends the raise after this handler (whether or not it succeeded): later handlers,
// synchronous or async, are not invoked.
template <class R>
struct Handled {
  Result<R> value;
  bool stop = false;
};

// The owner's decision on a bind request. `imposed_guard` (if set) is ANDed with the binder's own
// guard: the handler runs only when both accept. It is evaluated after the binder's guard.
template <class... Args>
struct Authorization {
  bool allowed = true;
  std::string reason;  // why refused; becomes the detail of the Errc::violation bind returns
  std::function<bool(const Args&...)> imposed_guard;
};

// One handler that failed during a raise. `binding` is the binding's name (BindOptions::name), or
// the binder's name if that was empty, or "binding#<n>". `error` is the handler's error; its
// `plugin` and `function` are filled in with the binder's and the event's name when the handler
// left them empty. A handler that threw is reported as Errc::crashed, "handler threw: <what()>";
// a guard that threw as Errc::crashed, "guard threw: <what()>" (the handler is then not run).
// (R is unused; it is kept so the spelling HandlerFailure<R> of the API stays valid.)
template <class R = void>
struct HandlerFailure {
  std::string binding;
  Error error;
};

// What raise() returns.
template <class T>
struct Raised {
  T value{};                                // the combiner's result
  std::size_t ran = 0;                      // handlers run on the raising thread, default included
  std::vector<HandlerFailure<>> failed;     // handlers that returned an error; the raise carried on
  [[nodiscard]] bool ok() const noexcept { return failed.empty(); }
};

// The "no guard" guard (the default of bind's G).
struct no_guard {};

// How deeply raises may nest on one thread. A handler that raises an event (directly, or through
// an extension whose host service raises one: a domain handler) runs that raise on the same
// stack, inside its own; a handler that raises its own event for ever, or two events whose
// handlers raise each other, would overflow the host's stack (a crossing into a domain and back
// costs several KiB of it per level). Every raise checks both bounds before running any handler.
// A raise beyond either runs no handler: it returns the combiner's empty result, ran == 0 and one
// failure, binding "<nesting>", Errc::limit, whose detail names the event and the depth; the
// raise that called it (one level out) goes on normally. Raises on other threads do not count,
// nor do async handlers (they run on pool threads, on their own stacks).
struct NestingLimits {
  // Raises of this event in progress on the calling thread, the new one included.
  unsigned same_event = 16;
  // Raises of any event in progress on the calling thread, the new one included. Checked against
  // the setting of the event being raised: when every event keeps the default, no thread nests
  // more than 64 raises (at a few KiB per domain crossing, well inside a default 8 MiB stack).
  // At most 256 (larger values are taken as 256).
  unsigned any_event = 64;
};

}  // namespace ward
