"""Can the host rely on a guest? Uncooperative guests x host policy x mechanism.

The thread this project started from: David Hildenbrand, "Relying on a guest to free up memory
when you really need it is not going to work"; Wei Wang, "Host can ask at any time (including
when not urgently need it) depending on the admin's configuration... host can decide whom to
offer the free pages first" (docs/references.md §4.2). :func:`cooperation` asks it of the
model: the memhog sequence of Nitesh Narayan Lal's v10/v11 letters (guests run memhog in
turn on a host with swap, :func:`fphlib.experiments.sequence_config`), with the first
``round(fraction * guests)`` guests uncooperative (``SimConfig.guest_overrides``
``cooperation``; by default they answer no ask: :mod:`fphlib.guest.cooperation`), under a
policy that asks at any time (``always_on``: hinting on from boot) and one that asks only when
the host runs short (``watermark``). The first guests' memhogs finish first: what they freed
is what the host needs for the later guests, so the question is who pays when it does not
come back: the host (swap, OOM kills), the cooperative guests or the uncooperative ones.

``slowdown`` is a guest's memhog runtime against the same guest in the run where every guest
cooperates (same mechanism, policy and seed).
"""

import pandas as pd

from ..api.config import SimConfig, check_number, policy_allows
from ..hinting import MECHANISMS
from ..host.policy import POLICIES
from .policies import SEQUENCE_INTERVAL_S, sequence_config

COOPERATION_COLUMNS = ("mechanism", "policy", "asks", "uncooperative", "role", "guests",
                       "runtime_s", "slowdown", "returned_bytes", "asks_unanswered",
                       "guest_swap_out_bytes", "oom_killed", "host_swap_out_bytes",
                       "host_swap_peak_bytes", "oom_kills")
# the policies that ask whatever the host's free memory (hinting on from boot, a fixed
# balloon target); every other built-in policy asks when the host runs short of its target
ASKS_AT_ANY_TIME = ("always_on", "static")
UNCOOPERATIVE = {"answers": 0.0}


def _fractions(fractions):
    out = [check_number("fractions", f, lo=0, hi=1) for f in fractions]
    if not out:
        raise ValueError("fractions: empty; expected at least one number in 0..1")
    return out


def cooperation_config(mechanism="page_reporting", policy="always_on", fraction=0.0,
                       uncooperative=None, scale=0.125, interval_s=SEQUENCE_INTERVAL_S,
                       seed=0, **overrides):
    """The memhog sequence with the first ``round(fraction * guests)`` guests answering as
    ``uncooperative`` says (default: no ask answered)."""
    fraction = check_number("fraction", fraction, lo=0, hi=1)
    base = sequence_config(mechanism, scale, interval_s, seed=seed, policy=policy, **overrides)
    n_bad = round(fraction * base.guests)
    coop = dict(UNCOOPERATIVE if uncooperative is None else uncooperative)
    entries = [dict(o, cooperation=coop) if g < n_bad else dict(o)
               for g, o in enumerate(base.guest_overrides)]
    return SimConfig.from_dict(dict(base.to_dict(), guest_overrides=entries)), n_bad


def cooperation(fractions=(0.0, 1 / 3, 2 / 3, 1.0), policies=("always_on", "watermark"),
                mechanisms=("page_reporting",), uncooperative=None, scale=0.125,
                interval_s=SEQUENCE_INTERVAL_S, seed=0, simulate=None, **overrides):
    """Uncooperative guests x policy x mechanism: who pays for a guest that does not answer.

    Parameters
    ----------
    fractions : sequence of float
        Shares of uncooperative guests (of 3), each rounded to whole guests.
    policies, mechanisms : sequence of str
        Registered names; a combination the policy cannot drive is skipped.
    uncooperative : dict, optional
        The uncooperative guests' ``cooperation`` (default ``{"answers": 0}``: no ask
        answered; e.g. ``{"delay_s": 30}`` or ``{"cap": "256MiB"}``).
    scale : float
        Multiplies every size of the v10/v11 memhog sequence (1.0: 3 x 6 GiB guests on a
        15 GiB host with 4 GiB swap).

    Returns
    -------
    pandas.DataFrame
        ``COOPERATION_COLUMNS``, one row per run and role (``cooperative`` /
        ``uncooperative`` guests): the role's mean memhog ``runtime_s`` and ``slowdown``,
        what its guests returned and left unanswered, their pages swapped out by the host
        and OOM kills; and the run's host swap-out, swap peak and OOM kills.
    """
    if simulate is None:  # the parameter shares the name
        from ..api.simulate import simulate
    fractions = _fractions(fractions)
    for name, given, known in (("mechanisms", mechanisms, MECHANISMS),
                               ("policies", policies, POLICIES)):
        for x in ([given] if isinstance(given, str) else given):
            if x not in known:
                raise ValueError(f"{name}: {x!r} is not allowed; known: {', '.join(known)}")
    mechanisms = [mechanisms] if isinstance(mechanisms, str) else list(mechanisms)
    policies = [policies] if isinstance(policies, str) else list(policies)
    rows = []
    for mech in mechanisms:
        for pol in policies:
            if not policy_allows(pol, mech):
                continue
            runtime0 = None
            for f in [0.0] + [f for f in fractions if f != 0.0]:
                cfg, n_bad = cooperation_config(mech, pol, f, uncooperative, scale,
                                                interval_s, seed, **overrides)
                res = simulate(cfg)
                gs = res.guest_summary
                runtime = gs["workload_runtime_s"].to_numpy()
                if runtime0 is None:
                    runtime0 = runtime
                    if 0.0 not in fractions:
                        continue
                slowdown = runtime / runtime0
                for role, sel in (("uncooperative", gs.guest < n_bad),
                                  ("cooperative", gs.guest >= n_bad)):
                    if not sel.any():
                        continue
                    g = gs[sel]
                    rows.append(dict(
                        mechanism=mech, policy=pol,
                        asks="at any time" if pol in ASKS_AT_ANY_TIME else "when short",
                        uncooperative=n_bad / len(gs), role=role, guests=int(sel.sum()),
                        runtime_s=float(g["workload_runtime_s"].mean()),
                        slowdown=float(pd.Series(slowdown[sel.to_numpy()]).mean()),
                        returned_bytes=int(g["returned_bytes"].sum()),
                        asks_unanswered=int(g["asks_unanswered"].sum()),
                        guest_swap_out_bytes=int(g["swap_out_bytes"].sum()),
                        oom_killed=int((g["status"] == "oom_killed").sum()),
                        host_swap_out_bytes=float(res.summary["swap_out_bytes"]),
                        host_swap_peak_bytes=float(res.host["swap_bytes"].max()),
                        oom_kills=float(res.summary["oom_kills"])))
    return pd.DataFrame(rows, columns=list(COOPERATION_COLUMNS))
