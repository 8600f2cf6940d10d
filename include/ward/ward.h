// Everything a host needs: domains, policies, interface declarations, typed plugins.
#pragma once

#include "ward/domain.h"
#include "ward/error.h"
#include "ward/interface.h"
#include "ward/plugin.h"
#include "ward/policy.h"
#include "ward/tainted.h"
#include "ward/supervisor.h"
