// Google Benchmark registrations for ward's in-process events (include/ward/events/event.h).
//
// Each benchmark performs exactly one operation per iteration, so the reported time per
// iteration is the cost of that operation:
//
//   events/direct_call_floor   call through a function pointer the optimiser cannot see through;
//                              the floor the raise figures are compared with (same run, same
//                              binary; "floor/direct_call" is the suite-wide equivalent)
//   events/raise_1_handler     raise with one synchronous handler, no guard
//   events/raise_1_guarded     raise with one synchronous handler and one guard that accepts
//   events/raise_8_handlers    raise with eight synchronous handlers, no guards
//   events/bind_unbind         one bind and one unbind (the unbind waits for a grace period)
//   events/raise_while_binding raise with one handler while another thread binds and unbinds a
//                              second handler in a loop (time per raise)
//
// The handlers compute x + 1 on a std::uint64_t and the result feeds the next iteration, like
// the floor's target function, so both measure a dependent chain of calls.
#pragma once

namespace ward::bench {

// Registers the benchmarks above. Calling it more than once registers them only once.
void register_event_benchmarks();

}  // namespace ward::bench
