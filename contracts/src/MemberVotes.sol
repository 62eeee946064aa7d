// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title MemberVotes
 * @notice The one proposal machinery of the consortium's governance: open, vote, pass by majority, lapse.
 *
 * Every decision the consortium admin may not take alone (a member change, {ConsortiumMembership}; a
 * lower quorum or a role newly allowed to perform an action, {RoleQuorumVotes}) is a proposal of some
 * `kind`, decided the same way:
 *
 * - it is about a `subject` (an account, a role, an action and a role), and one proposal per kind and
 *   subject is open at a time;
 * - it stays open {MEMBER_PROPOSAL_TTL} after it was opened, then lapses unpassed;
 * - each current member approves it once; approvals of accounts that lost their seat stop counting;
 * - the vote that makes a majority of the current members (more than half, {membersNeeded}) passes it,
 *   once: the contract of the kind then carries it out.
 *
 * Proposal ids are counted per kind, from 1. This contract keeps the ballots only: each kind keeps what
 * its proposals change, its permission checks, its custom errors (a {Refusal} says which to raise) and
 * its events. The inheriting contract says who the members are ({_isMember}, {_memberCount}).
 */
abstract contract MemberVotes {
    /// @notice How long a proposal stays open.
    uint64 public constant MEMBER_PROPOSAL_TTL = 7 days;

    /// @notice What every proposal has, whatever its kind: who opened it, until when, whether it passed.
    struct Ballot {
        address proposer;
        uint64 expiresAt;
        bool executed;
    }

    /// @notice Why a vote is refused ({Refusal.None}: it is not); each kind raises its own error for it.
    enum Refusal {
        None,
        UnknownProposal,
        Executed,
        Expired,
        AlreadyVoted
    }

    mapping(uint8 kind => Ballot[]) private _ballots;
    mapping(uint8 kind => mapping(uint256 id => address[])) private _voters;
    mapping(uint8 kind => mapping(uint256 id => mapping(address member => bool))) private _voted;
    mapping(uint8 kind => mapping(bytes32 subject => uint256 id)) private _latest;

    // ------------------------------------------------------------------ views

    /// @notice The approvals a proposal needs now: more than half of the current members.
    function membersNeeded() public view returns (uint256) {
        return _memberCount() / 2 + 1;
    }

    // ------------------------------------------------------------------ hooks

    /// @dev Whether `account` is a member now.
    function _isMember(address account) internal view virtual returns (bool);

    /// @dev How many members there are now.
    function _memberCount() internal view virtual returns (uint256);

    // ------------------------------------------------------------------ internal

    /// @dev Opens a ballot of `kind` about `subject`, proposed by the caller; the kind checked the
    /// proposer, the change and {_openBallotAbout}. The kind emits its event, then votes for a member.
    function _openBallot(uint8 kind, bytes32 subject) internal returns (uint256 id, uint64 expiresAt) {
        expiresAt = uint64(block.timestamp) + MEMBER_PROPOSAL_TTL;
        _ballots[kind].push(Ballot({proposer: msg.sender, expiresAt: expiresAt, executed: false}));
        id = _ballots[kind].length;
        _latest[kind][subject] = id;
    }

    /// @dev Why `member`'s vote on ballot `id` of `kind` is refused, and the ballot's expiry
    /// ({Refusal.None}: it may vote). Membership is the kind's check.
    function _voteRefusal(uint8 kind, uint256 id, address member) internal view returns (Refusal, uint64) {
        if (id == 0 || id > _ballots[kind].length) return (Refusal.UnknownProposal, 0);
        Ballot storage b = _ballots[kind][id - 1];
        if (b.executed) return (Refusal.Executed, b.expiresAt);
        if (b.expiresAt <= block.timestamp) return (Refusal.Expired, b.expiresAt);
        if (_voted[kind][id][member]) return (Refusal.AlreadyVoted, b.expiresAt);
        return (Refusal.None, b.expiresAt);
    }

    /// @dev Records `member`'s vote on an open ballot (the kind checked {_voteRefusal}); `passed` when it
    /// makes the majority of the current members: the ballot is then executed and the kind carries it out.
    function _castVote(uint8 kind, uint256 id, address member)
        internal
        returns (uint256 approvals, uint256 needed, bool passed)
    {
        _voted[kind][id][member] = true;
        _voters[kind][id].push(member);
        approvals = _currentMembersAmong(_voters[kind][id]);
        needed = membersNeeded();
        passed = approvals >= needed;
        if (passed) _ballots[kind][id - 1].executed = true;
    }

    /// @dev The open ballot of `kind` about `subject` (0: none can still pass).
    function _openBallotAbout(uint8 kind, bytes32 subject) internal view returns (uint256 id) {
        id = _latest[kind][subject];
        if (id != 0) {
            Ballot storage b = _ballots[kind][id - 1];
            if (b.executed || b.expiresAt <= block.timestamp) id = 0;
        }
    }

    /// @dev The latest ballot of `kind` about `subject` (0: none), open or not.
    function _latestBallot(uint8 kind, bytes32 subject) internal view returns (uint256) {
        return _latest[kind][subject];
    }

    /// @dev How many ballots of `kind` were opened (ids 1 to this).
    function _ballotCount(uint8 kind) internal view returns (uint256) {
        return _ballots[kind].length;
    }

    /// @dev Ballot `id` of `kind`, who voted for it and how many of them are members now; `exists` false
    /// (and the rest empty) for an unknown id: the kind raises its error.
    function _ballotView(uint8 kind, uint256 id)
        internal
        view
        returns (bool exists, Ballot memory ballot, address[] memory voters, uint256 approvals)
    {
        if (id == 0 || id > _ballots[kind].length) return (false, ballot, voters, 0);
        ballot = _ballots[kind][id - 1];
        voters = _voters[kind][id];
        approvals = _currentMembersAmong(_voters[kind][id]);
        exists = true;
    }

    /// @dev How many of `voters` are members now (a vote of an account that lost its seat stops counting).
    function _currentMembersAmong(address[] storage voters) internal view returns (uint256 count) {
        uint256 n = voters.length;
        for (uint256 i = 0; i < n; ++i) {
            if (_isMember(voters[i])) ++count;
        }
    }
}
