"""The access log's kind of the generic batch anchorer, through its fault paths.

The readings' kind has the fault suite (tests/ledger_service/test_faults_*.py); these check that the
access log's batches take the same send / confirm / adopt paths: a root the contract anchored
already is adopted (a send that landed before a crash), a transaction with no receipt after the
timeout is sent again, a refused send backs off.
"""

from __future__ import annotations

from eth_account import Account
from sqlmodel import Session

from contracts.chain import dev_accounts
from ledger_service.anchoring.access_log import AccessLogAnchorer
from ledger_service.anchoring.batcher import retry_delay_ms
from ledger_service.credit_desk.desk import FinanceDesk, desk_of
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import AccessLogBatchRow

FACTORY = "0x" + "fa" * 20


def _closed_batch(desk: FinanceDesk, entries: int = 2) -> int:
    for i in range(entries):
        desk.book.record(
            party=Account.create().address,
            factory=FACTORY,
            action="credit",
            outcome="answered",
            request_id=f"req-{i}",
        )
    batch_id = desk.anchorer.close_batch(force=True)
    assert batch_id is not None
    return batch_id


def _batch(desk: FinanceDesk, batch_id: int) -> AccessLogBatchRow:
    with Session(desk.anchorer.engine) as s:
        row = s.get(AccessLogBatchRow, batch_id)
    assert row is not None
    return row


def test_a_root_anchored_before_a_crash_is_adopted(ledger: LedgerService) -> None:
    desk = desk_of(ledger)
    b = _batch(desk, _closed_batch(desk))
    # the send landed, then the process died before recording it: the chain has the root
    fn = desk.anchorer.contract.functions.anchorAccessLog(b.root, b.count, b.from_ms, b.to_ms)
    landed = ledger.chain.send(fn, ledger.anchor_signer, context="the send before the crash")
    assert _batch(desk, int(b.id or 0)).status == BatchStatus.CLOSED
    desk.anchorer.tick()
    adopted = _batch(desk, int(b.id or 0))
    assert adopted.status == BatchStatus.ANCHORED and adopted.chain_index is not None, adopted
    assert adopted.tx_hash == landed and adopted.block_number is not None
    entry_id = desk.book.entries_for(FACTORY, limit=1)[0].id
    assert entry_id is not None and desk.book.verify(entry_id).root == b.root


def test_a_dropped_transaction_is_sent_again(ledger: LedgerService) -> None:
    desk = desk_of(ledger)
    batch_id = _closed_batch(desk)
    # sent long ago, never mined: the node has no receipt for it
    desk.anchorer.update(batch_id, status=BatchStatus.SUBMITTED, tx_hash="0x" + "ab" * 32, submitted_ms=1)
    desk.anchorer.tick()
    b = _batch(desk, batch_id)
    assert (b.status, b.tx_hash, b.submitted_ms, b.next_attempt_ms) == (BatchStatus.CLOSED, None, None, 0)
    desk.anchorer.tick()  # sent
    assert _batch(desk, batch_id).status == BatchStatus.SUBMITTED
    desk.anchorer.tick()  # confirmed
    b = _batch(desk, batch_id)
    assert b.status == BatchStatus.ANCHORED and b.chain_index is not None and b.tx_hash is not None


def test_a_send_the_contract_refuses_backs_off(ledger: LedgerService) -> None:
    desk = desk_of(ledger)
    batch_id = _closed_batch(desk)
    stranger = Account.create()  # funded, without ACCESS_LOG_ANCHOR_ROLE: the contract refuses it
    ledger.chain.transfer_value(dev_accounts(1)[0], stranger.address, 10**18)
    anchorer = AccessLogAnchorer(book=desk.book, signer=stranger)
    before = anchorer.now_ms()
    anchorer.tick()
    after = anchorer.now_ms()
    b = _batch(desk, batch_id)
    assert b.status == BatchStatus.CLOSED and b.attempts == 1 and b.last_error, b
    assert b.last_error.startswith("anchorAccessLog refused: "), b.last_error
    assert before + retry_delay_ms(1) <= b.next_attempt_ms <= after + retry_delay_ms(1)
    assert anchorer.last_error == b.last_error[:2000]
    if b.next_attempt_ms > anchorer.now_ms():
        anchorer.tick()  # not due yet: no second attempt
        assert _batch(desk, batch_id).attempts == 1
    desk.anchorer.update(batch_id, next_attempt_ms=0)  # due now: the service's key anchors it
    desk.anchorer.flush(timeout=30)
    assert _batch(desk, batch_id).status == BatchStatus.ANCHORED


def test_the_back_off_doubles_to_a_minute() -> None:
    assert [retry_delay_ms(n) for n in (1, 2, 3, 8, 9, 20)] == [500, 1000, 2000, 60_000, 60_000, 60_000]
