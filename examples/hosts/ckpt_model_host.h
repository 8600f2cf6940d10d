// The host's declaration of the ckpt_model plugin (examples/plugins/include/ckpt_model.h): a
// model retrained by replayed calls, settings compacted by key. Used by the checkpoint tests
// (src/recovery/checkpoint_test.cc) and `ward bench recovery`.
#pragma once

#include "ckpt_model.h"
#include "ward/iface/interface.h"

WARD_INTERFACE(ckpt_model_api,
               (reset, ward::replay_after_restart),
               (train, ward::replay_after_restart),
               (set, ward::replay_by_key(0)),
               (del, ward::cancels<&ckpt_model_api::set>(0)),
               (get, ward::idempotent),
               (digest, ward::idempotent),
               (crash),
               (spawn));
