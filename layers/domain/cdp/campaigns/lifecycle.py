"""Campaigns as data: define (in versions), validate, approve, start, schedule, pause, resume, stop, and the runs.

Lifecycle (each change checks the state it read, so two operators cannot interleave):

    draft --activate--> scheduled --pause--> paused --resume--> scheduled
    draft --activate--> live (a triggered journey: entering persons) --pause--> paused --resume--> live
    (any) --stop--> stopped            scheduled --(a once-schedule fired)--> completed
    a new version: scheduled or live stays so on it; stopped or completed become draft again

A run executes one version on the campaign state machine. A version whose planned sends or budget exceed the
brand's limits (`cdp.org.CampaignPolicy`) runs only once approved by another client than the one that defined it.
While the brand's stop switch is on no run starts, no scheduled occurrence runs (it is recorded as skipped) and
the send step holds every batch of the runs in flight (counted as `held_stop_switch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from cdp.audiences.models import ValidationIssue
from cdp.audiences.store import AudienceStore
from cdp.audiences.validation import pydantic_issues
from cdp.campaigns.catalog import (
    Approval,
    BrandSwitch,
    CampaignCatalog,
    CampaignRunner,
    CampaignState,
    RunRecord,
    StoredVersion,
)
from cdp.campaigns.definition import CampaignDefinition, problems, run_id_for
from cdp.campaigns.dry_run import ContactHistory, DryRunReport, dry_run
from cdp.campaigns.journey_dry_run import JourneyDryRun, journey_dry_run
from cdp.campaigns.journey_funnel import journey_funnel
from cdp.campaigns.journeys import JourneyResults, JourneyStore, SendOrders, summarize, total_outcomes
from cdp.campaigns.models import dump
from cdp.campaigns.ports import ArtifactStore, OfferPlans
from cdp.campaigns.service import summary_key
from cdp.campaigns.targeting import ValidationSource
from cdp.channels.models import MessageTemplate, SendBatchRequest
from cdp.channels.models import Offer as OfferPart
from cdp.channels.ports import MessageLog
from cdp.channels.preview import MessagePreview
from cdp.channels.preview import preview as message_preview
from cdp.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from cdp.ingest.auth import CAMPAIGNS_APPROVE_SCOPE, CAMPAIGNS_READ_SCOPE, CAMPAIGNS_WRITE_SCOPE, authorize
from cdp.ingest.ports import ApiClient
from cdp.org import OrgDirectory
from cdp.profile.ports import ProfileReader
from cdp.shared.time import utc_now

READ_SCOPE, WRITE_SCOPE, APPROVE_SCOPE = CAMPAIGNS_READ_SCOPE, CAMPAIGNS_WRITE_SCOPE, CAMPAIGNS_APPROVE_SCOPE
MAX_LATENESS = timedelta(hours=1)  # an occurrence found later than this (the scheduler was down) is skipped
NEXT_RUNS_SHOWN = 3
DUE_PER_TICK = 100


class CampaignInvalidError(InvalidInputError):
    """The definition is wrong; `errors` names every problem with its field path (422 at the edge)."""

    def __init__(self, errors: list[ValidationIssue]) -> None:
        self.errors = errors
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{errors[0].field}: {errors[0].message}{more}", location=errors[0].field)


@dataclass(frozen=True)
class Selection:
    """What a dry run reads: the profiles, the stored audiences, the contact histories."""

    profiles: ProfileReader
    audiences: AudienceStore | None
    contacts: ContactHistory | None
    validations: ValidationSource | None = None  # the uplift models' held-out comparisons (targeting auto)


class ValidationReport(BaseModel):
    valid: bool
    errors: list[ValidationIssue] = Field(default_factory=list)
    campaign_id: str | None = None
    planned_sends: int | None = Field(default=None, description="the most first sends a run can make")
    needs_approval: bool | None = None
    next_runs: list[datetime] = Field(default_factory=list, description="the schedule's next occurrences (UTC)")


class CampaignView(BaseModel):
    state: CampaignState
    version: StoredVersion
    planned_sends: int
    needs_approval: bool
    next_runs: list[datetime]


class CampaignList(BaseModel):
    brand_id: str
    campaigns: list[CampaignState]
    switch: BrandSwitch


class RunView(BaseModel):
    run: RunRecord
    status: str | None = Field(description="the execution's status; None for a skipped occurrence")
    summary: dict[str, Any] | None = Field(default=None, description="the run's results once it has finished")
    messages: dict[str, dict[str, int]] | None = Field(
        default=None,
        description="channel -> status -> the run's messages showing it now (sent, delivered, opened, clicked, "
        "failed, bounced, unsubscribed, complained), as their receipts moved them",
    )


class CampaignResults(BaseModel):
    """What a campaign achieved: a scheduled campaign's run (the latest with results, or the one asked for) with its
    funnel, lift and ROI; a journey's entries by group. `receipts`: the messages by the furthest status their
    receipts reached, over every channel (live: receipts keep arriving after a run's summary)."""

    campaign_id: str
    kind: Literal["run", "journey"]
    run: RunView | None = None
    journey: JourneyResults | None = None
    receipts: dict[str, int] = Field(default_factory=dict)


class StepPreview(BaseModel):
    step: str = Field(description="where the send is in the definition, e.g. steps[0] or paths.thanks[0]")
    messages: list[MessagePreview] = Field(description="one per channel the step may use, in preference order")


class CampaignPreview(BaseModel):
    """Every message of a version as one person would get it; nothing is sent, no offer issued."""

    campaign_id: str
    version: int
    person_id: str
    steps: list[StepPreview]


class RunList(BaseModel):
    campaign_id: str
    runs: list[RunView]


class SwitchRequest(BaseModel):
    brand_id: str = Field(min_length=1, max_length=128)
    stopped: bool
    reason: str | None = Field(default=None, max_length=500)


def receipts_by_status(by_channel: dict[str, dict[str, int]]) -> dict[str, int]:
    """channel -> status -> n, as status -> n over every channel."""
    out: dict[str, int] = {}
    for by_status in by_channel.values():
        for status, n in by_status.items():
            out[status] = out.get(status, 0) + n
    return dict(sorted(out.items()))


def authorize_campaigns(client: ApiClient, org: OrgDirectory, brand_id: str, scope: str) -> ApiClient:
    """The key holds `scope` and sees the whole brand (a campaign selects from all of the brand's customers)."""
    authorize(client, scope)
    if not client.org_scope.holds_brand(org, brand_id):  # a store's key must not reach the brand's customers
        raise ForbiddenError(f"the key of {client.name} is limited to {client.org_scope.label}, not brand {brand_id}")
    return client


def parse_definition(raw: Any) -> CampaignDefinition:
    """The definition, or CampaignInvalidError with every problem and its field path."""
    if not isinstance(raw, dict):
        raise CampaignInvalidError([ValidationIssue(field="(document)", message="expected a JSON object")])
    try:
        definition = CampaignDefinition.model_validate(raw)
    except ValidationError as exc:
        raise CampaignInvalidError(pydantic_issues(exc)) from exc
    found = problems(definition)
    if found:
        raise CampaignInvalidError(found)
    return definition


class TestSend(BaseModel):
    step: str = Field(description="the step's field path, e.g. paths.thanks[0]")
    channel: str
    persons: int


class TestSendReport(BaseModel):
    campaign_id: str
    version: int
    run_id: str = Field(description="the test sends' run: each seed's messages are recorded under it")
    sends: list[TestSend]
    unknown_seeds: list[str] = Field(default_factory=list, description="seeds that name no person of the brand")


class CampaignService:
    def __init__(
        self,
        catalog: CampaignCatalog,
        runner: CampaignRunner,
        artifacts: ArtifactStore,
        org: OrgDirectory,
        now: Callable[[], datetime] = utc_now,
        journeys: JourneyStore | None = None,
        selection: Selection | None = None,
        test_orders: SendOrders | None = None,
        plans: OfferPlans | None = None,
        messages: MessageLog | None = None,
        link_base: str | None = None,
    ) -> None:
        self.messages = messages  # the message log: each run's messages by their current status
        self.link_base = link_base  # tracked links' base URL: a preview counts an SMS's links as they will be sent
        self.catalog = catalog
        self.plans = plans  # a stopped run's offer plans go back to their pools
        self.runner = runner
        self.artifacts = artifacts
        self.org = org
        self.now = now
        self.journeys = journeys
        self.selection = selection
        self.test_orders = test_orders

    # ---- definitions ----------------------------------------------------------------------------------------------

    def validate(self, raw: Any) -> ValidationReport:
        try:
            definition = parse_definition(raw)
        except CampaignInvalidError as exc:
            return ValidationReport(valid=False, errors=exc.errors)
        return ValidationReport(
            valid=True,
            campaign_id=definition.campaign_id,
            planned_sends=definition.planned_sends(),
            needs_approval=self.needs_approval(definition),
            next_runs=self.next_runs(definition, self.now()),
        )

    def define(self, definition: CampaignDefinition, client: ApiClient) -> CampaignView:
        """Store the definition as the campaign's next version (the first creates it as a draft)."""
        now = self.now()
        brand, cid = definition.brand_id, definition.campaign_id
        pool = definition.budget.pool_id
        problem = self.plans.pool_problem(brand, pool, definition.budget.currency) if self.plans and pool else None
        if problem is not None:
            raise CampaignInvalidError([ValidationIssue(field="budget.pool_id", message=problem)])
        current = self.catalog.state(brand, cid)
        number = current.latest_version + 1 if current else 1
        version = StoredVersion(version=number, definition=definition, created_at=now, created_by=client.name)
        if current is None:
            state = CampaignState(
                brand_id=brand,
                campaign_id=cid,
                name=definition.name,
                status="draft",
                latest_version=1,
                created_at=now,
                updated_at=now,
                updated_by=client.name,
            )
        else:
            changes: dict[str, Any] = {"name": definition.name, "latest_version": number}
            if current.status == "scheduled":
                following = self._next(definition, now)
                changes |= {"active_version": number, "next_run_at": following}
                changes |= {} if following else {"status": "draft", "active_version": None}
            elif current.status == "live":  # new entries take the new version; those in flight finish on theirs
                if definition.trigger is None:
                    changes |= {"status": "draft", "active_version": None}
                elif not self.needs_approval(definition):  # else the live version serves until this one is approved
                    changes |= {"active_version": number}
            elif current.status in ("stopped", "completed"):
                changes |= {"status": "draft", "active_version": None, "next_run_at": None}
            state = self._changed(current, client, **changes)
        self.catalog.add_version(
            state, version, current.rev if current else None, current.next_run_at if current else None
        )
        return self._view(state, version)

    def get(self, brand_id: str, campaign_id: str, version: int | None = None) -> CampaignView:
        state = self._state(brand_id, campaign_id)
        return self._view(state, self._version(state, version or state.latest_version))

    def list_brand(self, brand_id: str) -> CampaignList:
        states = sorted(self.catalog.states(brand_id), key=lambda s: s.campaign_id)
        return CampaignList(brand_id=brand_id, campaigns=states, switch=self.catalog.switch(brand_id))

    def needs_approval(self, definition: CampaignDefinition) -> bool:
        policy = self.org.brand(definition.brand_id).campaigns
        sends, budget = policy.approval_above_sends, policy.approval_above_budget_minor
        return (sends is not None and definition.planned_sends() > sends) or (
            budget is not None and definition.budget.amount_minor > budget
        )

    def next_runs(self, definition: CampaignDefinition, after: datetime) -> list[datetime]:
        out: list[datetime] = []
        while len(out) < NEXT_RUNS_SHOWN and (following := self._next(definition, out[-1] if out else after)):
            out.append(following)
        return out

    # ---- approval and the switch ----------------------------------------------------------------------------------

    def approve(self, brand_id: str, campaign_id: str, version: int, client: ApiClient) -> CampaignView:
        state = self._state(brand_id, campaign_id)
        stored = self._version(state, version)
        if stored.created_by == client.name:
            raise ForbiddenError(f"version {version} was defined by {client.name}: another client must approve it")
        self.catalog.approve(brand_id, campaign_id, version, Approval(by=client.name, at=self.now()))
        later = state.active_version is not None and version > state.active_version
        if state.status == "live" and stored.definition.trigger is not None and later:
            self._put(state, self._changed(state, client, active_version=version))  # a live journey takes it now
        return self.get(brand_id, campaign_id, version)

    def set_switch(self, request: SwitchRequest, client: ApiClient) -> BrandSwitch:
        switch = BrandSwitch(
            brand_id=request.brand_id, stopped=request.stopped, reason=request.reason, by=client.name, at=self.now()
        )
        self.catalog.put_switch(switch)
        return switch

    # ---- runs ----------------------------------------------------------------------------------------------------

    def start(self, brand_id: str, campaign_id: str, client: ApiClient, version: int | None = None) -> RunView:
        """Run a version now (the latest by default), whatever the schedule."""
        now = self.now()
        state = self._state(brand_id, campaign_id)
        if state.status == "stopped":
            raise ConflictError(f"campaign {campaign_id} is stopped: define a new version to run it again")
        stored = self._version(state, version or state.latest_version)
        if stored.definition.trigger is not None:
            raise ConflictError(f"campaign {campaign_id} is a journey its trigger enters persons into: activate it")
        blocked = self._blocked(stored)
        if blocked:
            raise ConflictError(f"campaign {campaign_id} cannot start: {blocked}")
        run = RunRecord(
            run_id=run_id_for(campaign_id, stored.version, now, scheduled=False),
            brand_id=brand_id,
            campaign_id=campaign_id,
            version=stored.version,
            trigger="manual",
            at=now,
            by=client.name,
            outcome="started",
        )
        if not self.catalog.add_run(run):
            raise ConflictError(f"run {run.run_id} was started already (one start per second)")
        self.runner.start(run.run_id, {"request": dump(stored.definition.to_request(run.run_id))})
        return RunView(run=run, status=self.runner.status(run.run_id))

    def runs(self, brand_id: str, campaign_id: str, limit: int = 50) -> RunList:
        self._state(brand_id, campaign_id)
        records = self.catalog.runs(brand_id, campaign_id, limit)
        return RunList(campaign_id=campaign_id, runs=[self._run_view(r, with_summary=False) for r in records])

    def run(self, brand_id: str, campaign_id: str, run_id: str) -> RunView:
        record = self.catalog.run(brand_id, campaign_id, run_id)
        if record is None:
            raise NotFoundError(f"campaign {campaign_id} has no run {run_id}")
        return self._run_view(record, with_summary=True)

    def results(self, brand_id: str, campaign_id: str, run_id: str | None = None) -> CampaignResults:
        state = self._state(brand_id, campaign_id)
        if run_id is None and self._version(state, state.latest_version).definition.trigger is not None:
            found = self.journey(brand_id, campaign_id)
            receipts = receipts_by_status(found.message_status or {})
            return CampaignResults(campaign_id=campaign_id, kind="journey", journey=found, receipts=receipts)
        if run_id is not None:
            view = self.run(brand_id, campaign_id, run_id)
        else:
            ran = [r for r in self.catalog.runs(brand_id, campaign_id, 50) if r.outcome == "started"]  # newest first
            if not ran:
                raise NotFoundError(f"campaign {campaign_id} has not run yet")
            finished = [r for r in ran if self.artifacts.exists(summary_key(r.run_id))]
            view = self._run_view((finished or ran)[0], with_summary=True)
        return CampaignResults(
            campaign_id=campaign_id, kind="run", run=view, receipts=receipts_by_status(view.messages or {})
        )

    def journey(self, brand_id: str, campaign_id: str) -> JourneyResults:
        """A journey's persons by group and where they are now, with what its sends have cost, and its funnel per
        step and per A/B/n arm."""
        state = self._state(brand_id, campaign_id)
        if self.journeys is None:
            raise ConflictError("journey results are not wired here")
        definition = self._version(state, state.latest_version).definition
        if definition.trigger is None:
            raise ConflictError(f"campaign {campaign_id} is not a journey: see its runs")
        places = self.journeys.places(brand_id, campaign_id)
        results = summarize(campaign_id, places)
        tallies = self.journeys.step_outcomes(brand_id, campaign_id)
        by_step = self.messages.step_counts(brand_id, campaign_id) if self.messages is not None else {}
        steps, arms = journey_funnel(definition, places, tallies, by_step)
        update: dict[str, Any] = {
            "spent_minor": self.journeys.spent(brand_id, campaign_id),
            "messages": total_outcomes(tallies.values()),
            "steps": steps,
            "variant_steps": arms,
        }
        if self.messages is not None:  # every entry's messages together, by their current status
            totals: dict[str, dict[str, int]] = {}
            for by_channel in self.messages.counts(brand_id, campaign_id).values():
                for channel, by_status in by_channel.items():
                    for status, n in by_status.items():
                        totals.setdefault(channel, {})[status] = totals.get(channel, {}).get(status, 0) + n
            update["message_status"] = totals
        return results.model_copy(update=update)

    def preview(self, brand_id: str, campaign_id: str, person_id: str, version: int | None = None) -> CampaignPreview:
        """Each send of the version rendered for one of the brand's persons, on each channel it may use: the text,
        the provider template's variables and fields, an SMS's length and segments, and what would fail."""
        state = self._state(brand_id, campaign_id)
        stored = self._version(state, version or state.latest_version)
        if self.selection is None:
            raise ConflictError("previews are not wired here")
        profile = self.selection.profiles.get(person_id)
        if profile is None or profile.brand_id != brand_id:
            raise NotFoundError(f"no person {person_id}")
        steps = []
        for where, step in stored.definition.all_steps():
            if step.send is None:
                continue
            template = MessageTemplate.model_validate(step.send.template.model_dump(exclude_none=True))
            offer = OfferPart.model_validate(step.send.offer.model_dump(exclude_none=True)) if step.send.offer else None
            messages = [
                message_preview(template, channel, profile, self.now(), offer=offer, link_base=self.link_base)
                for channel in step.send.channels
            ]
            steps.append(StepPreview(step=where, messages=messages))
        return CampaignPreview(
            campaign_id=campaign_id, version=stored.version, person_id=profile.person_id, steps=steps
        )

    def dry_run(self, brand_id: str, campaign_id: str, version: int | None = None) -> DryRunReport | JourneyDryRun:
        """What the version's next runs would select, cost and collide with, on today's profiles (a journey: its
        entries replayed on the last days' events, or forecast from persons' dates); nothing is sent."""
        state = self._state(brand_id, campaign_id)
        stored = self._version(state, version or state.latest_version)
        if self.selection is None:
            raise ConflictError("dry runs are not wired here")
        others = [
            (other, self._version(other, other.active_version).definition)
            for other in self.catalog.states(brand_id)
            if other.active_version is not None and other.status in ("scheduled", "live")
        ]
        if stored.definition.trigger is not None:  # a journey: replayed on history, or forecast from persons' dates
            return journey_dry_run(
                stored.definition,
                stored.version,
                self.org.brand(brand_id),
                self.selection.profiles,
                self.selection.contacts,
                others,
                self.now(),
            )
        return dry_run(
            stored.definition,
            stored.version,
            self.org.brand(brand_id),
            self.selection.profiles,
            self.selection.audiences,
            self.selection.contacts,
            others,
            self.now(),
            self.selection.validations,
        )

    def test_send(
        self, brand_id: str, campaign_id: str, person_ids: list[str], version: int | None = None
    ) -> TestSendReport:
        """Every send of the version (its paths and variants too) to each seed person now, through the real send
        path (consent, address, rendering, the channel), past caps, quiet hours and the control group; nothing of it
        counts in the campaign's results or budget."""
        state = self._state(brand_id, campaign_id)
        stored = self._version(state, version or state.latest_version)
        if self.test_orders is None:
            raise ConflictError("test sends are not wired here")
        if not person_ids:
            raise InvalidInputError("no seed person: give seeds, or set the brand's campaigns.seed_list", "seeds")
        definition, at = stored.definition, self.now()
        stamp = f"{at:%Y%m%dT%H%M%S%fZ}"  # each test send is new: the send ledger delivers each (step, person) once
        run_id = f"{campaign_id}-v{stored.version}-test-{stamp}"
        orders: list[SendBatchRequest] = []
        sends: list[TestSend] = []
        for where, step in definition.all_steps():
            if step.send is None:
                continue
            orders.append(
                SendBatchRequest.model_validate(
                    {
                        **step.send.model_dump(exclude={"to"}),
                        "campaign_id": campaign_id,
                        "run_id": run_id,
                        "brand_id": brand_id,
                        "step": f"test-{stamp}-{len(orders)}",
                        "person_ids": person_ids,
                        "test": True,
                    }
                )
            )
            sends.append(TestSend(step=where, channel=step.send.channel, persons=len(person_ids)))
        self.test_orders.order(orders)
        return TestSendReport(campaign_id=campaign_id, version=stored.version, run_id=run_id, sends=sends)

    # ---- schedule --------------------------------------------------------------------------------------------------

    def activate(self, brand_id: str, campaign_id: str, client: ApiClient) -> CampaignView:
        state = self._state(brand_id, campaign_id)
        if state.status not in ("draft", "completed"):
            raise ConflictError(f"campaign {campaign_id} is {state.status}: only a draft is activated")
        return self._schedule(state, client)

    def resume(self, brand_id: str, campaign_id: str, client: ApiClient) -> CampaignView:
        state = self._state(brand_id, campaign_id)
        if state.status != "paused":
            raise ConflictError(f"campaign {campaign_id} is {state.status}: only a paused campaign resumes")
        return self._schedule(state, client)

    def pause(self, brand_id: str, campaign_id: str, client: ApiClient) -> CampaignView:
        """A schedule skips its occurrences; a journey enters nobody, and holds those in it where they are."""
        state = self._state(brand_id, campaign_id)
        if state.status not in ("scheduled", "live"):
            raise ConflictError(f"campaign {campaign_id} is {state.status}: only a scheduled or live campaign pauses")
        return self._put(state, self._changed(state, client, status="paused", next_run_at=None))

    def stop(self, brand_id: str, campaign_id: str, client: ApiClient) -> CampaignView:
        """No further runs; runs in flight are stopped (their messages sent so far stay sent)."""
        state = self._state(brand_id, campaign_id)
        if state.status == "stopped":
            raise ConflictError(f"campaign {campaign_id} is stopped already")
        view = self._put(state, self._changed(state, client, status="stopped", next_run_at=None, active_version=None))
        for run in self.catalog.runs(brand_id, campaign_id, limit=1000):
            if run.outcome == "started" and self.runner.status(run.run_id) == "RUNNING":
                self.runner.stop(run.run_id, f"campaign stopped by {client.name}")
                self._release_plans(state, run)
        return view

    def _release_plans(self, state: CampaignState, run: RunRecord) -> None:
        """A run stopped before its summary would keep its coupons' plan held: what is left goes back now (coupons
        already carved from it keep theirs; a send still in flight draws from the pools instead)."""
        definition = self._version(state, run.version).definition
        if self.plans is not None and (definition.catalog_offers or definition.budget.pool_id):
            self.plans.release(state.brand_id, run.run_id, definition.catalog_offers, self.now())

    def fire_due(self, now: datetime) -> list[RunRecord]:
        """Start (or skip, with the reason) every scheduled occurrence due by `now`, and move each campaign on to
        its next occurrence. Idempotent: an occurrence names its run, so a second tick starts nothing new."""
        fired: list[RunRecord] = []
        for entry in self.catalog.due(now, DUE_PER_TICK):
            state = self.catalog.state(entry.brand_id, entry.campaign_id)
            if state is None or state.status != "scheduled" or state.next_run_at != entry.at:
                continue  # paused, stopped or moved on since the entry was read
            assert state.active_version is not None
            stored = self._version(state, state.active_version)
            reason = "late: the occurrence was missed by over an hour" if now - entry.at > MAX_LATENESS else None
            run = RunRecord(
                run_id=run_id_for(state.campaign_id, stored.version, entry.at, scheduled=True),
                brand_id=state.brand_id,
                campaign_id=state.campaign_id,
                version=stored.version,
                trigger="schedule",
                at=entry.at,
                by="schedule",
                outcome="started",
            )
            reason = reason or self._blocked(stored)
            if reason:
                run = run.model_copy(update={"outcome": "skipped", "reason": reason})
            recorded = self.catalog.add_run(run)
            kept = run if recorded else (self.catalog.run(run.brand_id, run.campaign_id, run.run_id) or run)
            if kept.outcome == "started":  # also when a tick that recorded it stopped before starting it
                self.runner.start(run.run_id, {"request": dump(stored.definition.to_request(run.run_id))})
            run = kept
            following = self._next(stored.definition, entry.at)
            moved = self._changed(state, None, next_run_at=following, status="scheduled" if following else "completed")
            try:
                self.catalog.put_state(moved, state.rev, entry.at)
            except ConflictError:
                continue  # changed meanwhile (paused, a new version): the change decided the next occurrence
            fired.append(run)
        return fired

    # ---- helpers ---------------------------------------------------------------------------------------------------

    def _blocked(self, stored: StoredVersion) -> str | None:
        switch = self.catalog.switch(stored.definition.brand_id)
        if switch.stopped:
            return f"the brand's stop switch is on (by {switch.by}: {switch.reason or 'no reason given'})"
        if stored.approval is None and self.needs_approval(stored.definition):
            return f"version {stored.version} needs an approval (its planned sends or budget exceed the brand's limits)"
        return None

    def _schedule(self, state: CampaignState, client: ApiClient) -> CampaignView:
        stored = self._version(state, state.latest_version)
        if stored.definition.trigger is not None:
            blocked = self._blocked(stored)
            if blocked:
                raise ConflictError(f"campaign {state.campaign_id} cannot go live: {blocked}")
            live = self._changed(state, client, status="live", active_version=stored.version, next_run_at=None)
            return self._put(state, live)
        if stored.definition.schedule is None:
            raise ConflictError(f"version {stored.version} has no schedule: start it instead")
        following = self._next(stored.definition, self.now())
        if following is None:
            raise ConflictError(f"version {stored.version}'s schedule has no occurrence after now")
        changed = self._changed(state, client, status="scheduled", active_version=stored.version, next_run_at=following)
        return self._put(state, changed)

    def _next(self, definition: CampaignDefinition, after: datetime) -> datetime | None:
        schedule = definition.schedule
        return schedule.next_after(after, self.org.brand(definition.brand_id)) if schedule else None

    def _changed(self, state: CampaignState, client: ApiClient | None, **changes: Any) -> CampaignState:
        by = client.name if client else "schedule"
        return state.model_copy(update={**changes, "updated_at": self.now(), "updated_by": by, "rev": state.rev + 1})

    def _put(self, before: CampaignState, after: CampaignState) -> CampaignView:
        self.catalog.put_state(after, before.rev, before.next_run_at)
        return self._view(after, self._version(after, after.latest_version))

    def _state(self, brand_id: str, campaign_id: str) -> CampaignState:
        state = self.catalog.state(brand_id, campaign_id)
        if state is None:
            raise NotFoundError(f"brand {brand_id} has no campaign {campaign_id}")
        return state

    def _version(self, state: CampaignState, version: int) -> StoredVersion:
        stored = self.catalog.version(state.brand_id, state.campaign_id, version)
        if stored is None:
            raise NotFoundError(
                f"campaign {state.campaign_id} has no version {version} (latest: {state.latest_version})"
            )
        return stored

    def _view(self, state: CampaignState, version: StoredVersion) -> CampaignView:
        after = max(self.now(), state.next_run_at - timedelta(microseconds=1)) if state.next_run_at else self.now()
        return CampaignView(
            state=state,
            version=version,
            planned_sends=version.definition.planned_sends(),
            needs_approval=self.needs_approval(version.definition) and version.approval is None,
            next_runs=self.next_runs(version.definition, after) if state.status == "scheduled" else [],
        )

    def _run_view(self, run: RunRecord, with_summary: bool) -> RunView:
        if run.outcome == "skipped":
            return RunView(run=run, status=None)
        summary = None
        if with_summary and self.artifacts.exists(summary_key(run.run_id)):
            summary = self.artifacts.get_json(summary_key(run.run_id))
        messages = None
        if with_summary and self.messages is not None:
            messages = self.messages.counts(run.brand_id, run.campaign_id).get(run.run_id, {})
        return RunView(run=run, status=self.runner.status(run.run_id), summary=summary, messages=messages)
