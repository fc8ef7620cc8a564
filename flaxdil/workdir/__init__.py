"""The workdir room: everything a run keeps on disk, written so that a
killed run leaves nothing the next start cannot use.

  files.py        strict JSON, atomic writes, clear errors for damaged
                  files, a full disk recognised
  lock.py         one run per workdir (an OS lock, process 0's for a run of
                  several processes); what can be told before creating it
  record.py       config.json (the config that created the workdir) and
                  sessions.jsonl (what each session changed)
  checkpoints.py  Orbax checkpoints (latest K and best), checksums, fallback
                  past damaged ones, training time at each
"""
