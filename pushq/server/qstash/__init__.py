"""QStash's REST API under /v2, so the official QStash SDKs and Upstash Workflow run
against pushq by changing their base URL (docs/qstash.md; the wire contract is
read out of the SDKs' code).

A /v2 message is an ordinary pushq job: its QStash facts (retries, callbacks,
label, origin...) live in `job.meta` under kind "qstash", and the delivery hook
(`hook.QStashDelivery`) signs it with QStash's JWT, reads responses by QStash's
rules and sends its callbacks.

    keys.py         signing keys and the Upstash-Signature JWT
    durations.py    "1d10h30m"
    retry_delay.py  the Upstash-Retry-Delay expression evaluator (a parser, never eval)
    headers.py      publish headers -> a Publish (what the job is made of)
    hook.py         the delivery hook: request, outcome, callbacks
    render.py       jobs as QStash's Message, DlqMessage and events
    schedules.py    /v2/schedules over pushq schedules, and a firing's message
    topics.py       /v2/topics (URL groups) over pushq topics, and the fan-out
    flow_control.py flow-control values as flow-key limits, /v2/flowControl
    workflow.py     Upstash Workflow: runs and their step lists, /v2/workflows
    routes.py       the /v2 app: auth, errors, handlers
"""
