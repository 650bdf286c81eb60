"""A FastAPI backend with PyJWT and slowapi: the peer benches/nginx.sh measures tollgate against.

This is the auth endpoint a team writes by hand before it reaches for tollgate: a Python web
app that, for every request nginx's `auth_request` forwards, applies a rate limit and verifies
the bearer token. It does only that per-request work, so the comparison is of verifiers, not of
business logic:

    GET /auth   slowapi's in-memory limit of 1,000,000 requests a minute per client address
                (never reached in a run, but counted on every request, as tollgate counts),
                then PyJWT's HS256 verification of `Authorization: Bearer <token>`.
                204 when the token verifies, 401 when it is missing or does not.

Both answers have an empty body: nginx does not read the body of an auth subrequest's answer,
so an answer with a body could not return its connection to the keepalive pool, and the run
would measure TCP handshakes instead of the verifier.

benches/nginx.sh runs it with uvicorn, 2 worker processes (each with its own limiter state, as
such a backend is usually deployed), uvloop and httptools, on 127.0.0.1 only. The HS256 secret
comes from TOLLGATE_BENCH_HS256_SECRET, which benches/nginx.sh draws at random for each run and
gives to benches/support/mint_token.py as well.
"""

import os

import jwt
from fastapi import FastAPI, Request, Response
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

SECRET = os.environ["TOLLGATE_BENCH_HS256_SECRET"]
BEARER = "bearer "

limiter = Limiter(key_func=get_remote_address, storage_uri="memory://")
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
app.state.limiter = limiter
app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)


@app.get("/auth")
@limiter.limit("1000000/minute")
async def auth(request: Request) -> Response:
    # slowapi's decorator needs the `request` argument; the header is read from it too.
    header = request.headers.get("authorization", "")
    if header[: len(BEARER)].lower() != BEARER:
        return Response(status_code=401)
    try:
        jwt.decode(header[len(BEARER) :], SECRET, algorithms=["HS256"])
    except jwt.InvalidTokenError:
        return Response(status_code=401)
    return Response(status_code=204)
