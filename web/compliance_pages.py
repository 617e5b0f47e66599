"""Compliance's pages: loans to look into, each loan's trail step by step with its verify
badge and PDF, and the register of agreements (searchable). Operators may read them too,
as the API lets them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from core.temporal_client import workflow_ui_url
from models.loan_status import LoanStatus
from web.forms import FormState, refused
from web.guards import StaffSession, web_router
from web.platform_api import ApiProblem, PlatformApi
from web.rendering import render

router = web_router("/app/compliance")

REGISTER_PAGE = 50


@router.get("", response_class=HTMLResponse)
async def compliance_home(request: Request, session: StaffSession) -> Response:
    status = request.query_params.get("status", "")
    form = FormState(values={"status": status})
    loans: list[dict[str, Any]] = []
    try:
        loans = await PlatformApi(request, session.user).get("/v1/loans", status=status, limit=200)
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        form = refused(problem, {"status": status}, "", ("status",))
    return render(
        request,
        "compliance_home.html",
        session,
        title="Loans for compliance",
        form=form,
        loans=loans,
        status_options=[("", "any status"), *[(s.value, s.value) for s in LoanStatus]],
    )


@router.get("/loans/{loan_id}", response_class=HTMLResponse)
async def trail_page(loan_id: uuid.UUID, request: Request, session: StaffSession) -> Response:
    api = PlatformApi(request, session.user)
    trail, verification = await asyncio.gather(
        api.get(f"/v1/loans/{loan_id}/trail"), api.get(f"/v1/loans/{loan_id}/trail/verify")
    )
    broken_id = verification["chain"].get("first_broken_id")
    broken_step = next((step for step in trail["steps"] if step["id"] == broken_id), None)
    workflow_page = workflow_ui_url(request.app.state.settings, trail.get("workflow_id"))
    return render(
        request,
        "compliance_trail.html",
        session,
        title=f"Trail of loan {str(loan_id)[:8]}",
        trail=trail,
        verification=verification,
        broken_step=broken_step,
        workflow_page=workflow_page,
    )


@router.get("/loans/{loan_id}/trail.pdf")
async def trail_pdf(loan_id: uuid.UUID, request: Request, session: StaffSession) -> Response:
    response = await PlatformApi(request, session.user).call("GET", f"/v1/loans/{loan_id}/trail.pdf")
    return Response(
        response.content,
        media_type="application/pdf",
        headers={"Content-Disposition": response.headers.get("content-disposition", "attachment")},
    )


@router.get("/register", response_class=HTMLResponse)
async def register(request: Request, session: StaffSession) -> Response:
    values = {name: request.query_params.get(name, "").strip() for name in ("q", "kind")}
    try:
        page = max(int(request.query_params.get("page", "1")), 1)
    except ValueError:
        page = 1
    form = FormState(values=values)
    found: dict[str, Any] = {"items": [], "total": 0}
    try:
        found = await PlatformApi(request, session.user).get(
            "/v1/register", limit=REGISTER_PAGE, offset=(page - 1) * REGISTER_PAGE, **values
        )
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise
        form = refused(problem, values, "", ("q", "kind"))
    return render(
        request,
        "compliance_register.html",
        session,
        title="Register of agreements",
        form=form,
        found=found,
        page=page,
        pages=max((found["total"] + REGISTER_PAGE - 1) // REGISTER_PAGE, 1),
    )
