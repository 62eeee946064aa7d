// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ConsortiumMembership} from "./ConsortiumMembership.sol";

/**
 * @title RoleQuorumVotes
 * @notice A role's quorum is lowered by the consortium's members, never by the admin alone.
 *
 * A role's quorum is how many members must approve a party's application for it: the members' own
 * check on whom the consortium admits. The consortium admin defines roles and may raise a quorum alone
 * (`ParticipantRegistry.setRoleRule`), but it may not lower one: a lower quorum, and 0 above all
 * (a party is then admitted on its claims alone), is a {QuorumProposal}. It is decided like a member
 * change ({ConsortiumMembership}): opened by a member (its vote is counted at once) or the consortium
 * admin (no vote), carried out by the vote that makes a majority of the current members
 * ({membersNeeded}), and lapsing unpassed {MEMBER_PROPOSAL_TTL} after it was opened. Approvals of
 * accounts that lost their seat stop counting. One proposal per role is open at a time.
 *
 * The registry that inherits this keeps the rules: it says what a role's quorum is ({_roleQuorum})
 * and applies a passed proposal ({_setQuorumByVote}).
 */
abstract contract RoleQuorumVotes is ConsortiumMembership {
    /// @notice A proposal to lower `role`'s quorum to `quorum`; `executed` once passed.
    struct QuorumProposal {
        bytes32 role;
        address proposer;
        uint64 expiresAt;
        uint32 quorum;
        bool executed;
    }

    QuorumProposal[] private _quorumProposals;
    mapping(uint256 id => address[]) private _quorumVoters;
    mapping(uint256 id => mapping(address member => bool)) private _quorumVoted;
    mapping(bytes32 role => uint256 id) private _latestQuorumProposalOf;

    /// @notice Only members and the consortium admin open quorum proposals.
    error RoleQuorumVotesNotProposer(address caller);
    /// @notice A proposal lowers a quorum: `quorum` is not below `role`'s current `current` (the
    /// consortium admin raises a quorum alone, with `setRoleRule`).
    error RoleQuorumVotesNotLower(bytes32 role, uint32 current, uint32 quorum);
    /// @notice Proposal `id` about `role` is still open; vote on it, or wait until it lapses.
    error RoleQuorumVotesProposalPending(bytes32 role, uint256 id);
    /// @notice No quorum proposal has this id.
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

    // ------------------------------------------------------------------ writes

    /**
     * @notice Propose to lower `role`'s quorum; by a member (its vote is counted at once, so a lone
     * member's proposal passes) or the consortium admin (no vote).
     * @param role A role with a rule.
     * @param quorum The new quorum, below the current one (0: claims alone admit).
     * @return id The proposal's id (the first is 1).
     */
    function proposeRoleQuorum(bytes32 role, uint32 quorum) external returns (uint256 id) {
        bool member = hasRole(CONSORTIUM_MEMBER_ROLE, msg.sender);
        if (!member && !hasRole(CONSORTIUM_ADMIN_ROLE, msg.sender)) revert RoleQuorumVotesNotProposer(msg.sender);
        uint32 current = _roleQuorum(role);
        if (quorum >= current) revert RoleQuorumVotesNotLower(role, current, quorum);
        uint256 open = _latestQuorumProposalOf[role];
        if (open != 0 && _quorumOpen(_quorumProposals[open - 1])) revert RoleQuorumVotesProposalPending(role, open);
        uint64 expiresAt = uint64(block.timestamp) + MEMBER_PROPOSAL_TTL;
        _quorumProposals.push(
            QuorumProposal({role: role, proposer: msg.sender, expiresAt: expiresAt, quorum: quorum, executed: false})
        );
        id = _quorumProposals.length;
        _latestQuorumProposalOf[role] = id;
        emit QuorumProposed(id, role, current, quorum, msg.sender, expiresAt);
        if (member) _voteQuorum(id, msg.sender);
    }

    /**
     * @notice Approve an open quorum proposal, as a member (one vote each). The vote that makes a
     * majority of the current members ({membersNeeded}) lowers the quorum.
     * @param id The proposal.
     */
    function approveRoleQuorum(uint256 id) external {
        if (!hasRole(CONSORTIUM_MEMBER_ROLE, msg.sender)) revert ConsortiumMembershipNotMember(msg.sender);
        QuorumProposal storage p = _quorumProposalAt(id);
        if (p.executed) revert RoleQuorumVotesProposalExecuted(id);
        if (p.expiresAt <= block.timestamp) revert RoleQuorumVotesProposalExpired(id, p.expiresAt);
        if (_quorumVoted[id][msg.sender]) revert RoleQuorumVotesAlreadyVoted(msg.sender, id);
        _voteQuorum(id, msg.sender);
    }

    // ------------------------------------------------------------------ views

    /// @notice How many quorum proposals were opened (ids 1 to this).
    function quorumProposalCount() external view returns (uint256) {
        return _quorumProposals.length;
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
        proposal = _quorumProposalAt(id);
        voters = _quorumVoters[id];
        approvals = _currentMembersAmong(_quorumVoters[id]);
    }

    /// @notice The latest quorum proposal about `role` (0: none), open or not.
    function latestQuorumProposal(bytes32 role) external view returns (uint256) {
        return _latestQuorumProposalOf[role];
    }

    // ------------------------------------------------------------------ hooks

    /// @dev `role`'s current quorum; reverts when the role has no rule.
    function _roleQuorum(bytes32 role) internal view virtual returns (uint32);

    /// @dev Set `role`'s quorum to `quorum`, as a passed proposal decided.
    function _setQuorumByVote(bytes32 role, uint32 quorum) internal virtual;

    // ------------------------------------------------------------------ internal

    /// @dev Records `member`'s vote and lowers the quorum once a majority of current members approved.
    function _voteQuorum(uint256 id, address member) private {
        _quorumVoted[id][member] = true;
        _quorumVoters[id].push(member);
        uint256 approvals = _currentMembersAmong(_quorumVoters[id]);
        uint256 needed = membersNeeded();
        emit QuorumProposalApproved(id, member, approvals, needed);
        if (approvals < needed) return;
        QuorumProposal storage p = _quorumProposals[id - 1];
        p.executed = true;
        _setQuorumByVote(p.role, p.quorum);
        emit QuorumProposalExecuted(id, p.role, p.quorum);
    }

    /// @dev Whether a proposal can still pass.
    function _quorumOpen(QuorumProposal storage p) private view returns (bool) {
        return !p.executed && p.expiresAt > block.timestamp;
    }

    /// @dev The proposal `id`, or {RoleQuorumVotesUnknownProposal}.
    function _quorumProposalAt(uint256 id) private view returns (QuorumProposal storage) {
        if (id == 0 || id > _quorumProposals.length) revert RoleQuorumVotesUnknownProposal(id);
        return _quorumProposals[id - 1];
    }
}
