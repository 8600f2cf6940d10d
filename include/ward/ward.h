// Everything a host needs: domains, policies, interface declarations, typed plugins.
#pragma once

#include "ward/process/domain.h"
#include "ward/core/error.h"
#include "ward/iface/interface.h"
#include "ward/iface/instance.h"
#include "ward/iface/opaque.h"
#include "ward/core/policy.h"
#include "ward/core/tainted.h"
#include "ward/recovery/supervisor.h"
