"""The built-in exporters of ``pybpf export NAME``, one module each.

The pattern (copy ``opens.py`` to start a new one):

* The module docstring's first line is what ``pybpf export --list`` shows: start with
  the exporter's name, then what it measures.
* Maps and programs are written in the pybpf language as in ``programs/``: count in
  maps (``m[k] += 1``), never send per-event records; keys hold exactly the label
  fields (and, for histograms, the slot as the last field).
* Program names start with ``export_`` (15 characters at most), so ``bpftool prog``
  shows whose they are.
* ``METRICS = [...]`` declares the metrics (:mod:`pybpf.export.metrics`), named
  ``pybpf_<what>_<unit>`` (``_total`` for counters, ``_seconds`` with
  ``unit_scale=1e-9`` for nanoseconds), labels decoded with :mod:`pybpf.export.decoders`;
  optional ``CONSTS = {...}`` are the load-time constants.
* A test in ``tests/test_export_builtins.py`` (``tests/test_export.py`` for syscalls
  and opens) checks the values through a real Prometheus, with a workload of known
  effect; a label decoder the module needs goes into :mod:`pybpf.export.decoders`
  (not the module, whose functions are compiled to BPF).
"""
