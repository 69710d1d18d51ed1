"""A pushq worker: a plain web route that checks the signature, then does the work.

Run: PUSHQ_SIGNING_SECRET=whsec_... uvicorn examples.worker:app --port 9000
"""

import json
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from pushq import InvalidSignature
from pushq.worker import verify


async def send_email(request):
    body = await request.body()
    try:
        verify(os.environ["PUSHQ_SIGNING_SECRET"].split(), body, request.headers)
    except InvalidSignature:  # retried, like any failure: mid-rotation, the next may verify
        return JSONResponse({"error": "bad signature"}, status_code=401)
    job = json.loads(body)
    if not job.get("to"):  # no retry can mend this request: pushq-retry: false, dead at once
        refused = {"error": "no recipient"}
        return JSONResponse(refused, status_code=422, headers={"pushq-retry": "false"})
    # ... send the email; use request.headers["webhook-id"] to skip duplicates ...
    return JSONResponse({"sent_to": job["to"]})  # 2xx: done; any other answer: retried


app = Starlette(routes=[Route("/send-email", send_email, methods=["POST"])])
