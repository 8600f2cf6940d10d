// The whole host-side declaration that runs LADSPA plugins (Debian's ladspa-sdk, unmodified)
// as ward extensions: the descriptor's data (deep-copied, iface/deep.h), its function pointers
// (called through ward::Object, iface/object.h), and the one symbol a plugin exports.
//
// Instances are opaque pointers the plugin hands out (ward::returns_opaque); ports are buffers
// the plugin keeps between calls, so they live in sandbox memory (ward::shared, inst.alloc<T>).
// Under a Supervisor (ladspa_run_test.cc) a restart replays the descriptor's getter (so the host's
// descriptor is remapped to the new child's) and instantiate, connect_port and activate, which set
// state (so the host's instance handle and its connected ports keep working); run is not
// idempotent in general (a delay line keeps state), so a run the crash interrupted is the host's
// to send again.
#pragma once

#include <ladspa.h>

#include "ward/iface/deep.h"
#include "ward/ward.h"

WARD_STRUCT(LADSPA_Descriptor,
            (Label, ward::text),
            (Name, ward::text),
            (Maker, ward::text),
            (Copyright, ward::text),
            (PortDescriptors, ward::array(&LADSPA_Descriptor::PortCount)),
            (PortNames, ward::array(&LADSPA_Descriptor::PortCount)),
            (PortRangeHints, ward::array(&LADSPA_Descriptor::PortCount)),
            (ImplementationData, ward::skip),
            (instantiate, ward::function),
            (connect_port, ward::function),
            (activate, ward::function),
            (run, ward::function),
            (run_adding, ward::function),
            (set_run_adding_gain, ward::function),
            (deactivate, ward::function),
            (cleanup, ward::function));

WARD_INTERFACE(LADSPA_Descriptor,
               (instantiate, ward::self(0), ward::returns_opaque, ward::replay_after_restart),
               (connect_port, ward::opaque(0), ward::shared(2), ward::replay_after_restart),
               (activate, ward::opaque(0), ward::replay_after_restart),
               (run, ward::opaque(0)),
               (deactivate, ward::opaque(0)),
               (cleanup, ward::opaque(0)));

WARD_LIBRARY(ladspa_lib, (ladspa_descriptor, ward::returns_deep, ward::idempotent, ward::replay_after_restart));
