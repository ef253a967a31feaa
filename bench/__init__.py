"""`make bench`: the reproducible benchmark harness (not timed tests).

Sections, each its own module: `synth` (naive vs lean synthesis of generated environments,
the shipped ones next to an empty app: wall time, Python and Node peak memory), `first_synth`
(the first synthesis after `make setup`, cold vs warm jsii cache), `keycheck` (ns per key check, next to
aws-secretsmanager-caching, Powertools and an uncached boto3 fetch), `calls` (Secrets Manager
calls per process per hour, counted on the client, with a simulated clock) and `cost` (the
price of those calls). `report` writes the Markdown table, the JSON and the plot.

    python -m bench                 # everything, into bench/out/
    python -m bench --only synth    # one section

Only the bench imports these libraries; the runtime (`apikeys`) and the tests do not.
"""
