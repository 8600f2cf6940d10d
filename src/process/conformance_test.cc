// The backend conformance suite (src/backend/conformance_suite.inc.cc) on the process backend.
#include "ward/process/domain.h"

#define WARD_CONFORMANCE_BACKEND Process
#define WARD_CONFORMANCE_STARTER (&ward::ProcessDomain::start)
#include "backend/conformance_suite.inc.cc"
