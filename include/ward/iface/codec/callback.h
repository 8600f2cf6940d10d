// Codec rows for C callbacks (WARD_CALLBACK, iface/callback.h) and their void *user data. The
// extension receives a stub and a token for the registration; a token coming back is checked to be
// one this domain issued for this callback type before the host function gets its own user data.
#pragma once

#ifndef WARD_DETAIL_CODEC_ROWS
#error "ward/iface/codec/callback.h holds rows of the codec table: include ward/iface/codec.h"
#endif

namespace ward::detail {

// A callback: the host's function pointer, registered with the domain by its user-data row; the
// extension receives the stub of the callback type's table (by table id). The host keeps and
// replays the pointer itself (ByValue): its function outlives the domain's registrations.
template <>
struct Codec<ParamKind::callback> : ByValue {
  static constexpr bool late = false;
  template <class F, std::size_t I>
  static constexpr std::uint32_t table = service_id<typename F::api, callback_table<param_type<F, I>>>();
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::callback, sizeof(void*), nullable_at<F, I>);
    p.table = table<F, I>;
    return p;
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    if (std::get<I>(args)) {
      s = {table<F, I>, 0};
    } else {
      if (!nullable_at<F, I>)
        return std::unexpected(
            c.decorate(fail(Errc::misuse, param_label(I) + ": null callback (declare ward::nullable to allow it)").error()));
      s = {schema::kNull, 0};
    }
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall&, Held&, CopyBack&) {
    static_assert(dependent_false<F>, "ward: host services and callbacks cannot take callbacks themselves");
    return {};
  }
};

// A callback's user data. Host -> extension: the pair (callback, user data) is registered and
// the token crosses instead of the host's pointer (null with a null callback). Extension ->
// host, in a callback: the token is looked up (a violation unless this domain issued it for this
// callback type) and the host's function gets its own user data.
template <>
struct Codec<ParamKind::user_data> {
  static constexpr bool late = false;
  template <class F, std::size_t I>
  using held = CallbackTarget;  // `user` is what the C function receives
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::u64, sizeof(void*));  // libffi passes a pointer like this
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    constexpr std::size_t cb = ann_for(F::anns, I).ann.peer;
    const auto fn = std::get<cb>(args);
    if (!fn) {
      s = {0, 0};
      return {};
    }
    void* const user = const_cast<void*>(static_cast<const void*>(std::get<I>(args)));
    CallbackTarget t;
    if constexpr (param_kind<F, cb>() == ParamKind::handlers)
      t = {Codec<ParamKind::handlers>::table<F, cb>, nullptr, user, static_cast<const void*>(fn)};
    else
      t = {Codec<ParamKind::callback>::table<F, cb>, reinterpret_cast<void (*)()>(fn), user};
    auto token = WARD_TRY(c.register_callback(t));
    s = {token, 0};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack&) {
    auto s = WARD_TRY(up.param(I));
    auto t = WARD_TRY(up.callback(s.a));
    std::get<I>(held) = t;
    return {};
  }
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    return CallbackTarget{0, nullptr, const_cast<void*>(static_cast<const void*>(std::get<I>(args)))};
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    return static_cast<param_type<F, I>>(h.user);
  }
};

}  // namespace ward::detail
