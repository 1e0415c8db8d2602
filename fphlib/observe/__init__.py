"""The live kernel as ground truth: read the Linux guest fphlib runs on.

Every machine this project runs on is itself a KVM guest whose virtio-balloon may have
negotiated free page reporting (VIRTIO_BALLOON_F_REPORTING), with the kmem tracepoints and
``/proc/kpageflags`` at hand. This package records that real system so that the model can be
held against it (:mod:`fphlib.validation`) and users can replay their own workloads:

- :func:`probe` — what this machine offers (root, tracefs, kpageflags, the balloon's
  negotiated features, ``page_reporting_order``, kernel, RAM, CPUs);
- :func:`record_drain` — free memory and watch the kernel report it (``DrainRecording``);
- :func:`record_trace` — run a command under the kmem tracepoints and write an fphlib trace
  file (the ``trace`` workload);
- :func:`first_touch` — the real price of touching memory the host discarded after reporting.

Recording needs root (tracefs, ``/proc/kpageflags``); each missing piece raises
:class:`ObserveError` naming it. Recordings are saved and loaded atomically, validated and
versioned like simulation results. See ``docs/observe.md`` for how each signal is read.
"""

from .._lazy import lazy_names

_PUBLIC = {
    "ObserveError": "fphlib.observe._common",
    "load_recording": "fphlib.observe._common",
    "Probe": "fphlib.observe.machine",
    "probe": "fphlib.observe.machine",
    "DrainRecording": "fphlib.observe.drain",
    "record_drain": "fphlib.observe.drain",
    "TraceRecording": "fphlib.observe.trace",
    "record_trace": "fphlib.observe.trace",
    "FirstTouchRecording": "fphlib.observe.touch",
    "first_touch": "fphlib.observe.touch",
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC)
