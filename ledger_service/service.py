"""The ledger service's parts, wired together: chain, store, registry mirror, ingest, anchoring,
enrollment."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.errors import ChainError
from ledger_service.anchoring import AnchoringWorker
from ledger_service.anchoring.leader import Leadership, leader_interval
from ledger_service.config import Environment, Settings, with_token_secret
from ledger_service.enrollment.desk import EnrollmentDesk
from ledger_service.errors import ConfigError
from ledger_service.ingest.committer import Committer
from ledger_service.ingest.pipeline import IngestPipeline
from ledger_service.logs import log_rejections
from ledger_service.metrics import HealthMonitor, LedgerMetrics
from ledger_service.mqtt.bridge import MqttBridge
from ledger_service.registry_cache import RegistryCache
from ledger_service.store.batch_tree import build_encoded_tree
from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.instance_lock import InstanceLock, lock_for
from ledger_service.store.models import ReadingRow

log = logging.getLogger(__name__)


@dataclass
class LedgerService:
    """Everything the API, the MQTT bridge and the CLI use. Build with :meth:`build`."""

    settings: Settings
    chain: Chain
    deployment: Deployment
    engine: Engine
    registry: RegistryCache
    committer: Committer
    pipeline: IngestPipeline
    anchoring: AnchoringWorker
    anchor_signer: LocalAccount
    #: Device enrollment by its owning party: challenges, checks, relay, confirmation, device views.
    enrollment: EnrollmentDesk
    started: bool = False
    #: MQTT ingest, when ``settings.mqtt_url`` is set.
    mqtt: MqttBridge | None = None
    #: Prometheus metrics (a registry of this service's own) and component health.
    metrics: LedgerMetrics = field(default_factory=LedgerMetrics)
    #: Probes chain, database and broker (background thread while started; on demand for readiness).
    monitor: HealthMonitor | None = None
    #: Credit queries, their access log and its anchoring (``ledger_service.credit_desk.desk.desk_of``).
    finance: Any = None
    #: The re-rating schedule (``ledger_service.credit_desk.rerating_worker``), while started with
    #: ``settings.rerating_interval_seconds`` above 0.
    rerating: Any = None
    #: The recall worker (``ledger_service.lots.recall_worker``), while started with anchoring on and
    #: ``settings.recall_interval_seconds`` above 0.
    recall: Any = None
    #: The live check of the lines' operating windows (``ledger_service.analytics_store.window_check``),
    #: while started with ``settings.window_check_interval_seconds`` above 0.
    window_check: Any = None
    #: On a SQLite file, the lock that makes this the only instance running on it (held from start to
    #: stop, and while building); ``None`` on PostgreSQL and in-memory SQLite.
    instance_lock: InstanceLock | None = None
    #: The anchoring lead (``ledger_service.anchoring.leader``), while started with anchoring on: only
    #: the leader among the instances sharing the database anchors and runs the workers that send with
    #: a key (access log, recall, re-rating). ``None`` without anchoring (those run unled, by hand).
    leader: Leadership | None = None

    def __post_init__(self) -> None:
        m = self.metrics
        self.pipeline.observers.append(lambda _objs, results, source: m.observe_ingest(results, source))
        self.pipeline.observers.append(log_rejections)
        self.anchoring.on_anchored = lambda ev: m.observe_anchored(
            count=ev.count, oldest_received_ms=ev.oldest_received_ms, anchored_ms=ev.anchored_ms
        )
        m.bind_backlog(self.anchoring.backlog)
        m.bind_lost(lambda: len(self.anchoring.lost or []))
        m.bind_leader(lambda: self.leader.state() if self.leader is not None else None)
        mqtt = self.mqtt
        m.bind_broker((lambda: mqtt.connected) if mqtt is not None else None)
        if mqtt is not None:
            mqtt.on_dead_letter = m.observe_dead_letter  # supet_mqtt_dead_letters_total{reason}
        signer = self.anchor_signer.address
        self.monitor = HealthMonitor(
            m,
            chain_block=self.chain.block_number,
            database=self._database_probe,
            broker=mqtt.status if mqtt is not None else None,
            signer_balance=lambda: int(
                self.chain.request(lambda: self.chain.w3.eth.get_balance(signer), context="signer balance")
            ),
            interval=self.settings.health_interval_seconds,
        )

    @classmethod
    def build(
        cls, settings: Settings, *, chain: Chain | None = None, deployment: Deployment | None = None
    ) -> LedgerService:
        """Connect to the chain and the database; on the embedded chain, deploy the suite first.

        Without ``SUPET_TOKEN_SECRET``, the installation's token secret is read from its data
        directory, or generated there on the first start (:func:`with_token_secret`).

        On a SQLite file, the instance lock is held while building: while another instance runs (or
        builds) on the same file, :class:`~ledger_service.errors.InstanceLockedError` is raised before
        anything is written. :meth:`start` takes the lock again and holds it until :meth:`stop`.
        """
        lock = lock_for(settings.database_url)
        try:
            service = cls._assemble(settings, chain=chain, deployment=deployment)
        finally:
            if lock is not None:
                lock.release()  # held while preparing the database; :meth:`start` takes it for good
        service.instance_lock = lock
        return service

    @classmethod
    def _assemble(
        cls, settings: Settings, *, chain: Chain | None, deployment: Deployment | None
    ) -> LedgerService:
        settings = with_token_secret(settings)
        chain, deployment = _chain_and_deployment(settings, chain, deployment)
        try:
            deployment.check(chain)
        except ChainError as e:
            log.warning("chain unreachable at start (%s): serving ingest, anchoring will retry", e)
        signer = _anchor_signer(settings)
        engine = make_engine(settings.database_url)
        create_schema(engine)
        registry = RegistryCache(
            chain=chain,
            deployment=deployment,
            engine=engine,
            min_refresh_interval=settings.registry_refresh_seconds,
        )
        try:
            registry.refresh()
        except ChainError as e:
            log.warning("registry mirror not refreshed at start (%s); serving the stored view", e)
        committer = Committer(engine)
        pipeline = IngestPipeline(
            settings=settings,
            registry=registry,
            committer=committer,
            chain_id=chain.chain_id,
            anchor_address=deployment.address("ReadingAnchor"),
        )
        anchoring = AnchoringWorker(
            settings=settings,
            engine=engine,
            chain=chain,
            deployment=deployment,
            signer=signer,
            build_tree=lambda digests: pipeline.run_cpu(build_encoded_tree, digests),
        )
        committer.on_commit = anchoring.note_committed
        mqtt = (
            MqttBridge(
                url=settings.mqtt_url,
                pipeline=pipeline,
                on_accepted=anchoring.wake,
                client_id=settings.mqtt_client_id,
                share_group=settings.mqtt_share_group or None,
                session_expiry=settings.mqtt_session_expiry_seconds,
                max_payload_bytes=settings.mqtt_max_payload_bytes,
                max_readings=settings.max_batch_submissions,
            )
            if settings.mqtt_url
            else None
        )
        return cls(
            settings=settings,
            chain=chain,
            deployment=deployment,
            engine=engine,
            registry=registry,
            committer=committer,
            pipeline=pipeline,
            anchoring=anchoring,
            anchor_signer=signer,
            enrollment=EnrollmentDesk(
                chain=chain,
                deployment=deployment,
                engine=engine,
                mirror=registry,
                chain_timeout=settings.anchor_timeout_seconds,
            ),
            mqtt=mqtt,
        )

    def start(self) -> None:
        if self.started:
            return
        if self.instance_lock is not None:
            self.instance_lock.acquire()  # refused if another instance runs on the file
        self.pipeline.start()
        self.registry.start(self.settings.registry_poll_seconds)
        leader = self.leader = self._leadership() if self.settings.anchoring else None
        if leader is not None:
            self.anchoring.leader = leader
            leader.start()  # a first step now: a lone instance leads (and anchors) from the start
            self.anchoring.start()
            if "CreditRegistry" in self.deployment.contracts:
                from ledger_service.credit_desk.desk import desk_of

                anchorer = desk_of(self).anchorer
                anchorer.leader = leader
                anchorer.start()
            if self.settings.recall_interval_seconds > 0:
                from ledger_service.lots.recall_worker import RecallWorker

                self.recall = RecallWorker.for_service(self)
                self.recall.gate = lambda: leader.is_leader
                self.recall.start()
        if self.settings.rerating_interval_seconds > 0 and "CreditRegistry" in self.deployment.contracts:
            from ledger_service.credit_desk.rerating_worker import ReratingWorker, rerater_for

            self.rerating = ReratingWorker(lambda: rerater_for(self), self.settings.rerating_interval_seconds)
            if leader is not None:
                self.rerating.gate = lambda: leader.is_leader
            self.rerating.start()
        if self.settings.window_check_interval_seconds > 0:
            from ledger_service.analytics_store.window_check import WindowChecker, WindowCheckWorker

            checker = WindowChecker(self.engine, on_checked=self.metrics.observe_window_check)
            self.window_check = WindowCheckWorker(checker, self.settings.window_check_interval_seconds)
            self.window_check.start()
        if self.mqtt is not None:
            self.mqtt.start()
        if self.monitor is not None:
            self.monitor.start()
        self.started = True

    def stop(self) -> None:
        if not self.started:
            self._release_instance()
            return
        if self.monitor is not None:
            self.monitor.stop()
        if self.rerating is not None:
            self.rerating.stop()
            self.rerating = None
        if self.recall is not None:
            self.recall.stop()
            self.recall = None
        if self.window_check is not None:
            self.window_check.stop()
            self.window_check = None
        if self.mqtt is not None:
            self.mqtt.stop()  # first: it feeds the pipeline
        self.anchoring.stop()
        if self.finance is not None:
            self.finance.anchorer.stop()
        if self.leader is not None:
            self.leader.stop()  # after the workers that write under it: another instance leads next
            self.anchoring.leader = None
            if self.finance is not None:
                self.finance.anchorer.leader = None
            self.leader = None
        self.registry.stop()
        self.pipeline.stop()
        self.started = False
        self._release_instance()

    def _leadership(self) -> Leadership:
        """The anchoring lead of this instance: on taking it, the keys' nonces are read from the node
        again (another leader sent with them) and the readings' worker starts afresh."""
        leader = Leadership(self.engine, interval=leader_interval(self.settings.batch_max_seconds))
        leader.on_acquired.append(self.anchoring.took_lead)
        oracle = _oracle_address(self.settings)
        if oracle is not None:
            leader.on_acquired.append(lambda: self.chain.reset_nonce(oracle))
        return leader

    def _release_instance(self) -> None:
        if self.instance_lock is not None:
            self.instance_lock.release()

    def _database_probe(self) -> None:
        with Session(self.engine) as s:
            s.exec(select(func.count()).select_from(ReadingRow)).one()  # type: ignore[call-overload]

    def readiness(self) -> dict[str, object]:
        """What readiness reports: database, chain, registry mirror, MQTT ingest, checked now.

        ``components`` gives each of chain, database and broker as ``{state, since_ms, detail,
        last_ok_ms}`` (``since_ms``: when it entered that state, as far as this process saw).
        """
        assert self.monitor is not None
        states = self.monitor.probe()
        checks: dict[str, object] = {}
        db = states["database"]
        checks["database"] = "ok" if db.state == "ok" else f"error: {db.detail}"
        chain = states["chain"]
        if chain.state == "ok":
            checks["chain_block"] = self.monitor.last_block
            checks["chain"] = "ok"
        else:
            checks["chain"] = f"error: {chain.detail}"
        checks["registry_devices"] = len(self.registry)
        checks["anchoring_error"] = self.anchoring.last_error
        # {leader, epoch, since_ms, shared}: whether this instance anchors (one instance per database)
        leader = self.leader
        checks["anchoring_leader"] = leader.state().to_json_obj() if leader is not None else "disabled"
        checks["mqtt"] = self.mqtt.status() if self.mqtt is not None else "disabled"
        checks["components"] = {name: st.to_json_obj() for name, st in sorted(states.items())}
        return checks


def _chain_and_deployment(
    settings: Settings, chain: Chain | None, deployment: Deployment | None
) -> tuple[Chain, Deployment]:
    """The chain and deployment to serve: given ones kept, else loaded or connected (on the
    embedded chain, the suite deployed and, with ``settings.deployment``, saved there)."""
    if deployment is None and settings.chain != "embedded":
        assert settings.deployment is not None  # enforced by Settings
        deployment = Deployment.load(settings.deployment)
    if chain is None:
        if settings.chain == "embedded":
            chain = Chain.embedded(timeout=settings.anchor_timeout_seconds)
        else:
            # Ingest does not need the chain: a service (re)started while the node is down opens
            # anyway, on the deployment's chain id; anchoring catches up when the node is back.
            assert deployment is not None
            chain = Chain.connect(
                settings.chain,
                timeout=settings.anchor_timeout_seconds,
                expected_chain_id=deployment.chain_id,
            )
    if deployment is None:
        deployment = deploy_suite(chain, dev_accounts(1)[0])
        if settings.deployment is not None:
            deployment.save(settings.deployment)
    return chain, deployment


def _oracle_address(settings: Settings) -> str | None:
    """The re-rating oracle's address, if its key is set and valid (an invalid one is the re-rating
    pass's to report)."""
    key = settings.rerating_oracle_key
    if key is None:
        return None
    try:
        return str(Account.from_key(key.get_secret_value()).address)
    except ValueError:
        return None


def _anchor_signer(settings: Settings) -> LocalAccount:
    if settings.anchor_key is not None:
        try:
            return Account.from_key(settings.anchor_key.get_secret_value())
        except ValueError as e:
            raise ConfigError("SUPET_ANCHOR_KEY is not a valid private key (0x-hex, 32 bytes)") from e
    if settings.environment is Environment.PRODUCTION:
        raise ConfigError("SUPET_ANCHOR_KEY is required in production")
    # development: the deployer of the public test mnemonic, which holds ANCHOR_ROLE after deploy
    return dev_accounts(1)[0]
