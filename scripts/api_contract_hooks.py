"""Schemathesis hooks for scripts/api-contract.

The run's stateful phase follows the API's links, so it can revoke the operator token it
runs with, remove the host whose device token it uses for the device routes, or remove or
demote the `admin` user that token belongs to; every operation after that would be tested
only for 401 or 403. Those calls are pointed at a name that names nothing instead (a 404 the
contract documents), so the credentials last the whole run. Tokens, hosts and users the run
creates itself may be revoked, removed and changed as usual.
"""

import os

import schemathesis

KEPT_TOKENS = [t for t in os.environ.get("FERRY_CONTRACT_KEEP_TOKENS", "").split(",") if t]
KEPT_HOSTS = [h for h in os.environ.get("FERRY_CONTRACT_KEEP_HOSTS", "").split(",") if h]
NOTHING = "0000000000000000-kept-by-the-contract-run"


def names_one_of(given, kept):
    """Whether `given` (a full id, an id prefix or a hostname) may resolve to one of `kept`."""
    given = str(given)
    return any(k == given or k.startswith(given) for k in kept)


KEPT = {"/tokens/{id}": ("id", KEPT_TOKENS), "/hosts/{host}": ("host", KEPT_HOSTS)}
# The user the run's operator token belongs to: neither removed nor changed.
KEPT_USER = "admin"


@schemathesis.hook
def before_call(context, case, kwargs):
    if not case.path_parameters:
        return
    if (
        case.method.upper() in ("DELETE", "PATCH")
        and case.path.endswith("/users/{name}")
        and case.path_parameters.get("name") == KEPT_USER
    ):
        case.path_parameters["name"] = NOTHING
        return
    if case.method.upper() != "DELETE":
        return
    for suffix, (param, kept) in KEPT.items():
        given = case.path_parameters.get(param)
        if case.path.endswith(suffix) and given is not None and names_one_of(given, kept):
            case.path_parameters[param] = NOTHING
