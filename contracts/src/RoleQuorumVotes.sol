// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsortiumMembership} from "./ConsortiumMembership.sol";

/**
 * @title RoleQuorumVotes
 * @notice The members' check on admissions is lowered by the consortium's members, never by the admin alone.
 *
 * A role's quorum is how many members must approve a party's application for it: the members' own
 * check on whom the consortium admits. Two changes would weaken that check, and the consortium admin
 * may make neither alone:
 *
 * - lowering a role's quorum, to 0 above all (a party is then admitted on its claims alone): a
 *   {QuorumProposal};
 * - letting one more role perform an action that already has its roles (otherwise the admin would
 *   define a new role with quorum 0 and map the action to it): an {ActionRoleProposal}. Before an
 *   action's roles are first set, and for taking roles away, the admin acts alone
 *   (`ParticipantRegistry.setActionRoles`).
 *
 * Both are decided like a member change ({ConsortiumMembership}, {MemberVotes}): opened by a member
 * (its vote is counted at once) or the consortium admin (no vote), carried out by the vote that makes a
 * majority of the current members ({membersNeeded}), and lapsing unpassed {MEMBER_PROPOSAL_TTL} after
 * it was opened. Approvals of accounts that lost their seat stop counting. One proposal per role (for a
 * quorum), per action and role (for an action) is open at a time. Quorum and action-role proposals are
 * numbered apart, each from 1; the errors below name the proposal of the function called.
 *
 * The registry that inherits this keeps the rules: it says what a role's quorum is ({_roleQuorum}),
 * whether a role may be proposed for an action ({_checkActionRoleProposal}), and applies a passed
 * proposal ({_setQuorumByVote}, {_allowActionRoleByVote}).
 */
abstract contract RoleQuorumVotes is ConsortiumMembership {
    /// @dev The {MemberVotes} kind of quorum proposals.
    uint8 private constant _QUORUM_VOTE = 1;
    /// @dev The {MemberVotes} kind of action-role proposals.
    uint8 private constant _ACTION_ROLE_VOTE = 2;

    /// @notice A proposal to lower `role`'s quorum to `quorum`; `executed` once passed.
    struct QuorumProposal {
        bytes32 role;
        address proposer;
        uint64 expiresAt;
        uint32 quorum;
        bool executed;
    }

    /// @notice A proposal to let `role` perform `action` too; `executed` once passed.
    struct ActionRoleProposal {
        bytes32 action;
        bytes32 role;
        address proposer;
        uint64 expiresAt;
        bool executed;
    }

    /// @notice What a quorum proposal changes (its ballot is {MemberVotes}').
    struct QuorumChange {
        bytes32 role;
        uint32 quorum;
    }

    /// @notice What an action-role proposal changes (its ballot is {MemberVotes}').
    struct ActionRoleChange {
        bytes32 action;
        bytes32 role;
    }

    mapping(uint256 id => QuorumChange) private _quorumChanges;
    mapping(uint256 id => ActionRoleChange) private _actionRoleChanges;

    /// @notice Only members and the consortium admin open quorum and action-role proposals.
    error RoleQuorumVotesNotProposer(address caller);
    /// @notice A proposal lowers a quorum: `quorum` is not below `role`'s current `current` (the
    /// consortium admin raises a quorum alone, with `setRoleRule`).
    error RoleQuorumVotesNotLower(bytes32 role, uint32 current, uint32 quorum);
    /// @notice Proposal `id` about `role` is still open; vote on it, or wait until it lapses.
    error RoleQuorumVotesProposalPending(bytes32 role, uint256 id);
    /// @notice Action-role proposal `id` to let `role` perform `action` is still open; vote on it, or wait
    /// until it lapses.
    error RoleQuorumVotesActionRolePending(bytes32 action, bytes32 role, uint256 id);
    /// @notice No proposal has this id (quorum or action-role, as the function called).
    error RoleQuorumVotesUnknownProposal(uint256 id);
    /// @notice The proposal passed already.
    error RoleQuorumVotesProposalExecuted(uint256 id);
    /// @notice The proposal lapsed at `expiresAt`.
    error RoleQuorumVotesProposalExpired(uint256 id, uint64 expiresAt);
    /// @notice `member` approved proposal `id` already.
    error RoleQuorumVotesAlreadyVoted(address member, uint256 id);

    /// @notice `proposer` proposed to lower `role`'s quorum from `current` to `quorum`; open until `expiresAt`.
    event QuorumProposed(
        uint256 indexed id,
        bytes32 indexed role,
        uint32 current,
        uint32 quorum,
        address indexed proposer,
        uint64 expiresAt
    );
    /// @notice `member` approved proposal `id`: `approvals` current members of the `needed` majority.
    event QuorumProposalApproved(uint256 indexed id, address indexed member, uint256 approvals, uint256 needed);
    /// @notice Proposal `id` passed: `role`'s quorum is now `quorum`.
    event QuorumProposalExecuted(uint256 indexed id, bytes32 indexed role, uint32 quorum);
    /// @notice `proposer` proposed to let `role` perform `action`; open until `expiresAt`.
    event ActionRoleProposed(
        uint256 indexed id, bytes32 indexed action, bytes32 indexed role, address proposer, uint64 expiresAt
    );
    /// @notice `member` approved action-role proposal `id`: `approvals` current members of the `needed` majority.
    event ActionRoleProposalApproved(
        uint256 indexed id, address indexed member, uint256 approvals, uint256 needed
    );
    /// @notice Action-role proposal `id` passed: `role` may now perform `action`.
    event ActionRoleProposalExecuted(uint256 indexed id, bytes32 indexed action, bytes32 indexed role);

    // ------------------------------------------------------------------ writes

    /**
     * @notice Propose to lower `role`'s quorum; by a member (its vote is counted at once, so a lone
     * member's proposal passes) or the consortium admin (no vote).
     * @param role A role with a rule.
     * @param quorum The new quorum, below the current one (0: claims alone admit).
     * @return id The proposal's id (the first is 1).
     */
    function proposeRoleQuorum(bytes32 role, uint32 quorum) external returns (uint256 id) {
        bool member = _checkProposer();
        uint32 current = _roleQuorum(role);
        if (quorum >= current) revert RoleQuorumVotesNotLower(role, current, quorum);
        uint256 open = _openBallotAbout(_QUORUM_VOTE, role);
        if (open != 0) revert RoleQuorumVotesProposalPending(role, open);
        uint64 expiresAt;
        (id, expiresAt) = _openBallot(_QUORUM_VOTE, role);
        _quorumChanges[id] = QuorumChange({role: role, quorum: quorum});
        emit QuorumProposed(id, role, current, quorum, msg.sender, expiresAt);
        if (member) _voteQuorum(id, msg.sender);
    }

    /**
     * @notice Approve an open quorum proposal, as a member (one vote each). The vote that makes a
     * majority of the current members ({membersNeeded}) lowers the quorum.
     * @param id The proposal.
     */
    function approveRoleQuorum(uint256 id) external {
        _checkVote(_QUORUM_VOTE, id);
        _voteQuorum(id, msg.sender);
    }

    /**
     * @notice Propose to let `role` perform `action` too (added to its roles); by a member (its vote is
     * counted at once, so a lone member's proposal passes) or the consortium admin (no vote).
     * @param action The action; not zero.
     * @param role A role with a rule, not yet allowed to perform `action`; the action has room for it.
     * @return id The proposal's id (the first is 1).
     */
    function proposeActionRole(bytes32 action, bytes32 role) external returns (uint256 id) {
        bool member = _checkProposer();
        _checkActionRoleProposal(action, role);
        bytes32 subject = keccak256(abi.encode(action, role));
        uint256 open = _openBallotAbout(_ACTION_ROLE_VOTE, subject);
        if (open != 0) revert RoleQuorumVotesActionRolePending(action, role, open);
        uint64 expiresAt;
        (id, expiresAt) = _openBallot(_ACTION_ROLE_VOTE, subject);
        _actionRoleChanges[id] = ActionRoleChange({action: action, role: role});
        emit ActionRoleProposed(id, action, role, msg.sender, expiresAt);
        if (member) _voteActionRole(id, msg.sender);
    }

    /**
     * @notice Approve an open action-role proposal, as a member (one vote each). The vote that makes a
     * majority of the current members ({membersNeeded}) adds the role to the action's roles.
     * @param id The proposal.
     */
    function approveActionRole(uint256 id) external {
        _checkVote(_ACTION_ROLE_VOTE, id);
        _voteActionRole(id, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @notice How many quorum proposals were opened (ids 1 to this).
    function quorumProposalCount() external view returns (uint256) {
        return _ballotCount(_QUORUM_VOTE);
    }

    /**
     * @notice A quorum proposal, who approved it (members or not any more), and how many current members.
     * @param id The proposal.
     */
    function quorumProposal(uint256 id)
        external
        view
        returns (QuorumProposal memory proposal, address[] memory voters, uint256 approvals)
    {
        Ballot memory ballot;
        (ballot, voters, approvals) = _existingBallot(_QUORUM_VOTE, id);
        QuorumChange storage change = _quorumChanges[id];
        proposal = QuorumProposal({
            role: change.role,
            proposer: ballot.proposer,
            expiresAt: ballot.expiresAt,
            quorum: change.quorum,
            executed: ballot.executed
        });
    }

    /// @notice The latest quorum proposal about `role` (0: none), open or not.
    function latestQuorumProposal(bytes32 role) external view returns (uint256) {
        return _latestBallot(_QUORUM_VOTE, role);
    }

    /// @notice How many action-role proposals were opened (ids 1 to this).
    function actionRoleProposalCount() external view returns (uint256) {
        return _ballotCount(_ACTION_ROLE_VOTE);
    }

    /**
     * @notice An action-role proposal, who approved it (members or not any more), and how many current members.
     * @param id The proposal.
     */
    function actionRoleProposal(uint256 id)
        external
        view
        returns (ActionRoleProposal memory proposal, address[] memory voters, uint256 approvals)
    {
        Ballot memory ballot;
        (ballot, voters, approvals) = _existingBallot(_ACTION_ROLE_VOTE, id);
        ActionRoleChange storage change = _actionRoleChanges[id];
        proposal = ActionRoleProposal({
            action: change.action,
            role: change.role,
            proposer: ballot.proposer,
            expiresAt: ballot.expiresAt,
            executed: ballot.executed
        });
    }

    /// @notice The latest proposal to let `role` perform `action` (0: none), open or not.
    function latestActionRoleProposal(bytes32 action, bytes32 role) external view returns (uint256) {
        return _latestBallot(_ACTION_ROLE_VOTE, keccak256(abi.encode(action, role)));
    }

    // ------------------------------------------------------------------ hooks

    /// @dev `role`'s current quorum; reverts when the role has no rule.
    function _roleQuorum(bytes32 role) internal view virtual returns (uint32);

    /// @dev Set `role`'s quorum to `quorum`, as a passed proposal decided.
    function _setQuorumByVote(bytes32 role, uint32 quorum) internal virtual;

    /// @dev Reverts unless `role` may be proposed for `action`: both valid, the role not allowed yet.
    function _checkActionRoleProposal(bytes32 action, bytes32 role) internal view virtual;

    /// @dev Let `role` perform `action` too, as a passed proposal decided.
    function _allowActionRoleByVote(bytes32 action, bytes32 role) internal virtual;

    // ------------------------------------------------------------------ internal

    /// @dev Whether the caller is a member (else the consortium admin; anyone else is refused).
    function _checkProposer() private view returns (bool member) {
        member = _isMember(msg.sender);
        if (!member && !hasRole(CONSORTIUM_ADMIN_ROLE, msg.sender)) revert RoleQuorumVotesNotProposer(msg.sender);
    }

    /// @dev Refuses the caller's vote on proposal `id` of `kind` unless it is a member who may vote on it.
    function _checkVote(uint8 kind, uint256 id) private view {
        if (!_isMember(msg.sender)) revert ConsortiumMembershipNotMember(msg.sender);
        (Refusal refusal, uint64 expiresAt) = _voteRefusal(kind, id, msg.sender);
        if (refusal == Refusal.UnknownProposal) revert RoleQuorumVotesUnknownProposal(id);
        if (refusal == Refusal.Executed) revert RoleQuorumVotesProposalExecuted(id);
        if (refusal == Refusal.Expired) revert RoleQuorumVotesProposalExpired(id, expiresAt);
        if (refusal == Refusal.AlreadyVoted) revert RoleQuorumVotesAlreadyVoted(msg.sender, id);
    }

    /// @dev Ballot `id` of `kind`, its voters and current approvals, or {RoleQuorumVotesUnknownProposal}.
    function _existingBallot(uint8 kind, uint256 id)
        private
        view
        returns (Ballot memory ballot, address[] memory voters, uint256 approvals)
    {
        bool exists;
        (exists, ballot, voters, approvals) = _ballotView(kind, id);
        if (!exists) revert RoleQuorumVotesUnknownProposal(id);
    }

    /// @dev Records `member`'s vote and lowers the quorum once a majority of current members approved.
    function _voteQuorum(uint256 id, address member) private {
        (uint256 approvals, uint256 needed, bool passed) = _castVote(_QUORUM_VOTE, id, member);
        emit QuorumProposalApproved(id, member, approvals, needed);
        if (!passed) return;
        QuorumChange storage change = _quorumChanges[id];
        _setQuorumByVote(change.role, change.quorum);
        emit QuorumProposalExecuted(id, change.role, change.quorum);
    }

    /// @dev Records `member`'s vote and allows the role once a majority of current members approved.
    function _voteActionRole(uint256 id, address member) private {
        (uint256 approvals, uint256 needed, bool passed) = _castVote(_ACTION_ROLE_VOTE, id, member);
        emit ActionRoleProposalApproved(id, member, approvals, needed);
        if (!passed) return;
        ActionRoleChange storage change = _actionRoleChanges[id];
        _allowActionRoleByVote(change.action, change.role);
        emit ActionRoleProposalExecuted(id, change.action, change.role);
    }
}
