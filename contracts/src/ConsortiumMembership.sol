// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {AccessControlEnumerable} from "@openzeppelin/contracts/access/extensions/AccessControlEnumerable.sol";
import {MemberVotes} from "./MemberVotes.sol";

/**
 * @title ConsortiumMembership
 * @notice The consortium's members and how they change: its own governance, apart from the admin.
 *
 * Members vote on applications (a role's quorum counts their approvals), so whoever could make
 * members could make any quorum. Here nobody can alone:
 *
 * - The first members are set once ({bootstrapMembers}, by the consortium admin, when the
 *   consortium's policy is first applied). After that, the admin cannot add nor remove a member.
 * - A member is admitted or removed only by a {MemberProposal} ({MemberVotes}): opened by a member or
 *   the consortium admin, it passes when a majority of the current members (more than half,
 *   {membersNeeded}) approved it, and lapses unpassed {MEMBER_PROPOSAL_TTL} after it was opened.
 *   Approvals of accounts that lost their seat stop counting. A proposal opened by a member carries
 *   its vote.
 * - `grantRole`, `revokeRole` and `renounceRole` refuse {CONSORTIUM_MEMBER_ROLE}
 *   ({ConsortiumMembershipByVoteOnly}): a member that wants to leave proposes its own removal.
 *
 * The default admin is an OpenZeppelin `AccessControlDefaultAdminRules` admin: handed over in two
 * steps, {ADMIN_TRANSFER_DELAY} apart, never granted outright. It grants {CONSORTIUM_ADMIN_ROLE}.
 */
abstract contract ConsortiumMembership is MemberVotes, AccessControlDefaultAdminRules, AccessControlEnumerable {
    /// @notice The delay of a two-step admin handover (`beginDefaultAdminTransfer`, then the new admin's
    /// `acceptDefaultAdminTransfer` once it has passed); the admin may change it, itself with a delay.
    uint48 public constant ADMIN_TRANSFER_DELAY = 3 days;
    /// @notice Role of the consortium admin: rules, trusted issuers, action mapping, suspension, and the
    /// first members (once); it may propose member changes, not pass them.
    bytes32 public constant CONSORTIUM_ADMIN_ROLE = keccak256("supet.role.consortium-admin");
    /// @notice Role of consortium members: one vote per application and per member proposal. Changed only
    /// by {bootstrapMembers} (once) and passed {MemberProposal}s.
    bytes32 public constant CONSORTIUM_MEMBER_ROLE = keccak256("supet.role.consortium-member");
    /// @dev The {MemberVotes} kind of member proposals.
    uint8 private constant _MEMBER_VOTE = 0;

    /// @notice A proposal to admit (`admit`) or remove `account` as a member; `executed` once passed.
    struct MemberProposal {
        address account;
        bool admit;
        bool executed;
        address proposer;
        uint64 expiresAt;
    }

    /// @notice What a member proposal changes (its ballot is {MemberVotes}').
    struct MemberChange {
        address account;
        bool admit;
    }

    bool private _bootstrapped;
    mapping(uint256 id => MemberChange) private _changes;

    /// @notice Members change by {bootstrapMembers} and member proposals only, never by role grants.
    error ConsortiumMembershipByVoteOnly();
    /// @notice The first members were set already.
    error ConsortiumMembershipAlreadyBootstrapped();
    /// @notice The first members must be at least one account.
    error ConsortiumMembershipNoMembers();
    /// @notice Member proposals need the first members ({bootstrapMembers}).
    error ConsortiumMembershipNotBootstrapped();
    /// @notice The zero address cannot be a member.
    error ConsortiumMembershipZeroAccount();
    /// @notice `account` is a member already.
    error ConsortiumMembershipAlreadyMember(address account);
    /// @notice `account` is not a member (to be removed, or to vote).
    error ConsortiumMembershipNotMember(address account);
    /// @notice Only members and the consortium admin open member proposals.
    error ConsortiumMembershipNotProposer(address caller);
    /// @notice `account` is the last member: removing it would leave nobody to vote, ever.
    error ConsortiumMembershipLastMember(address account);
    /// @notice Proposal `id` is still open for `account`; vote on it, or wait until it lapses.
    error ConsortiumMembershipProposalPending(address account, uint256 id);
    /// @notice No member proposal has this id.
    error ConsortiumMembershipUnknownProposal(uint256 id);
    /// @notice The proposal passed already.
    error ConsortiumMembershipProposalExecuted(uint256 id);
    /// @notice The proposal lapsed at `expiresAt`.
    error ConsortiumMembershipProposalExpired(uint256 id, uint64 expiresAt);
    /// @notice `member` approved proposal `id` already.
    error ConsortiumMembershipAlreadyVoted(address member, uint256 id);

    /// @notice The first members were set, by the consortium admin `by`.
    event MembersBootstrapped(address[] members, address indexed by);
    /// @notice `proposer` proposed to admit (`admit`) or remove `account`; open until `expiresAt`.
    event MemberProposed(
        uint256 indexed id, address indexed account, bool admit, address indexed proposer, uint64 expiresAt
    );
    /// @notice `member` approved proposal `id`: `approvals` current members of the `needed` majority.
    event MemberProposalApproved(uint256 indexed id, address indexed member, uint256 approvals, uint256 needed);
    /// @notice Proposal `id` passed: `account` was admitted (`admit`) or removed.
    event MemberProposalExecuted(uint256 indexed id, address indexed account, bool admit);

    /**
     * @param admin Receives the default admin (handed over in two steps, {ADMIN_TRANSFER_DELAY}) and
     * consortium admin roles; not zero (`AccessControlInvalidDefaultAdmin`).
     */
    constructor(address admin) AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin) {
        _setRoleAdmin(CONSORTIUM_MEMBER_ROLE, CONSORTIUM_MEMBER_ROLE);
        _grantRole(CONSORTIUM_ADMIN_ROLE, admin);
    }

    // ------------------------------------------------------------------ writes

    /**
     * @notice Set the first members, once; by the consortium admin. Later changes are member proposals.
     * @param members Distinct, non-zero accounts; at least one.
     */
    function bootstrapMembers(address[] calldata members) external onlyRole(CONSORTIUM_ADMIN_ROLE) {
        if (_bootstrapped) revert ConsortiumMembershipAlreadyBootstrapped();
        if (members.length == 0) revert ConsortiumMembershipNoMembers();
        _bootstrapped = true;
        for (uint256 i = 0; i < members.length; ++i) {
            if (members[i] == address(0)) revert ConsortiumMembershipZeroAccount();
            if (!_grantRole(CONSORTIUM_MEMBER_ROLE, members[i])) {
                revert ConsortiumMembershipAlreadyMember(members[i]);
            }
        }
        emit MembersBootstrapped(members, msg.sender);
    }

    /**
     * @notice Propose to admit (`admit`) or remove `account`; by a member (its vote is counted at once, so a
     * lone member's proposal passes) or the consortium admin (no vote).
     * @param account The account; not zero, without another open proposal.
     * @param admit True to admit it (not a member yet), false to remove it (a member, not the last).
     * @return id The proposal's id (the first is 1).
     */
    function proposeMember(address account, bool admit) external returns (uint256 id) {
        bool member = hasRole(CONSORTIUM_MEMBER_ROLE, msg.sender);
        if (!member && !hasRole(CONSORTIUM_ADMIN_ROLE, msg.sender)) revert ConsortiumMembershipNotProposer(msg.sender);
        if (!_bootstrapped) revert ConsortiumMembershipNotBootstrapped();
        if (account == address(0)) revert ConsortiumMembershipZeroAccount();
        _checkChange(account, admit);
        bytes32 subject = bytes32(uint256(uint160(account)));
        uint256 open = _openBallotAbout(_MEMBER_VOTE, subject);
        if (open != 0) revert ConsortiumMembershipProposalPending(account, open);
        uint64 expiresAt;
        (id, expiresAt) = _openBallot(_MEMBER_VOTE, subject);
        _changes[id] = MemberChange({account: account, admit: admit});
        emit MemberProposed(id, account, admit, msg.sender, expiresAt);
        if (member) _vote(id, msg.sender);
    }

    /**
     * @notice Approve an open member proposal, as a member (one vote each). The vote that makes a majority
     * of the current members ({membersNeeded}) carries the change out.
     * @param id The proposal.
     */
    function approveMemberProposal(uint256 id) external {
        if (!_isMember(msg.sender)) revert ConsortiumMembershipNotMember(msg.sender);
        (Refusal refusal, uint64 expiresAt) = _voteRefusal(_MEMBER_VOTE, id, msg.sender);
        if (refusal == Refusal.UnknownProposal) revert ConsortiumMembershipUnknownProposal(id);
        if (refusal == Refusal.Executed) revert ConsortiumMembershipProposalExecuted(id);
        if (refusal == Refusal.Expired) revert ConsortiumMembershipProposalExpired(id, expiresAt);
        if (refusal == Refusal.AlreadyVoted) revert ConsortiumMembershipAlreadyVoted(msg.sender, id);
        _vote(id, msg.sender);
    }

    /// @notice Refused for {CONSORTIUM_MEMBER_ROLE} ({ConsortiumMembershipByVoteOnly}); else as OpenZeppelin's.
    function grantRole(bytes32 role, address account)
        public
        virtual
        override(AccessControl, AccessControlDefaultAdminRules, IAccessControl)
    {
        if (role == CONSORTIUM_MEMBER_ROLE) revert ConsortiumMembershipByVoteOnly();
        super.grantRole(role, account);
    }

    /// @notice Refused for {CONSORTIUM_MEMBER_ROLE} ({ConsortiumMembershipByVoteOnly}); else as OpenZeppelin's.
    function revokeRole(bytes32 role, address account)
        public
        virtual
        override(AccessControl, AccessControlDefaultAdminRules, IAccessControl)
    {
        if (role == CONSORTIUM_MEMBER_ROLE) revert ConsortiumMembershipByVoteOnly();
        super.revokeRole(role, account);
    }

    /// @notice Refused for {CONSORTIUM_MEMBER_ROLE} ({ConsortiumMembershipByVoteOnly}); else as OpenZeppelin's.
    function renounceRole(bytes32 role, address account)
        public
        virtual
        override(AccessControl, AccessControlDefaultAdminRules, IAccessControl)
    {
        if (role == CONSORTIUM_MEMBER_ROLE) revert ConsortiumMembershipByVoteOnly();
        super.renounceRole(role, account);
    }

    // ------------------------------------------------------------------ views

    /// @notice Whether the first members were set.
    function membersBootstrapped() external view returns (bool) {
        return _bootstrapped;
    }

    /// @notice How many member proposals were opened (ids 1 to this).
    function memberProposalCount() external view returns (uint256) {
        return _ballotCount(_MEMBER_VOTE);
    }

    /**
     * @notice A member proposal, who approved it (members or not any more), and how many current members.
     * @param id The proposal.
     */
    function memberProposal(uint256 id)
        external
        view
        returns (MemberProposal memory proposal, address[] memory voters, uint256 approvals)
    {
        (bool exists, Ballot memory ballot, address[] memory who, uint256 count) = _ballotView(_MEMBER_VOTE, id);
        if (!exists) revert ConsortiumMembershipUnknownProposal(id);
        MemberChange storage change = _changes[id];
        proposal = MemberProposal({
            account: change.account,
            admit: change.admit,
            executed: ballot.executed,
            proposer: ballot.proposer,
            expiresAt: ballot.expiresAt
        });
        (voters, approvals) = (who, count);
    }

    /// @notice The latest proposal about `account` (0: none), open or not.
    function latestMemberProposal(address account) external view returns (uint256) {
        return _latestBallot(_MEMBER_VOTE, bytes32(uint256(uint160(account))));
    }

    /// @inheritdoc AccessControlEnumerable
    function supportsInterface(bytes4 interfaceId)
        public
        view
        virtual
        override(AccessControlDefaultAdminRules, AccessControlEnumerable)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------ internal

    /// @dev Records `member`'s vote and carries the change out once a majority of current members approved.
    function _vote(uint256 id, address member) private {
        (uint256 approvals, uint256 needed, bool passed) = _castVote(_MEMBER_VOTE, id, member);
        emit MemberProposalApproved(id, member, approvals, needed);
        if (!passed) return;
        MemberChange storage change = _changes[id];
        _checkChange(change.account, change.admit);
        if (change.admit) _grantRole(CONSORTIUM_MEMBER_ROLE, change.account);
        else _revokeRole(CONSORTIUM_MEMBER_ROLE, change.account);
        emit MemberProposalExecuted(id, change.account, change.admit);
    }

    /// @dev Refuses a change that no longer applies: admitting a member, removing a non-member or the last.
    function _checkChange(address account, bool admit) private view {
        bool member = hasRole(CONSORTIUM_MEMBER_ROLE, account);
        if (admit && member) revert ConsortiumMembershipAlreadyMember(account);
        if (!admit && !member) revert ConsortiumMembershipNotMember(account);
        if (!admit && getRoleMemberCount(CONSORTIUM_MEMBER_ROLE) == 1) revert ConsortiumMembershipLastMember(account);
    }

    /// @inheritdoc MemberVotes
    function _isMember(address account) internal view override returns (bool) {
        return hasRole(CONSORTIUM_MEMBER_ROLE, account);
    }

    /// @inheritdoc MemberVotes
    function _memberCount() internal view override returns (uint256) {
        return getRoleMemberCount(CONSORTIUM_MEMBER_ROLE);
    }

    /// @dev OpenZeppelin's default-admin rule (the default admin role administers itself only).
    function _setRoleAdmin(bytes32 role, bytes32 adminRole)
        internal
        virtual
        override(AccessControl, AccessControlDefaultAdminRules)
    {
        super._setRoleAdmin(role, adminRole);
    }

    /// @dev Both OpenZeppelin extensions keep their bookkeeping (the default admin, the enumeration).
    function _grantRole(bytes32 role, address account)
        internal
        virtual
        override(AccessControlDefaultAdminRules, AccessControlEnumerable)
        returns (bool)
    {
        return super._grantRole(role, account);
    }

    /// @dev Both OpenZeppelin extensions keep their bookkeeping (the default admin, the enumeration).
    function _revokeRole(bytes32 role, address account)
        internal
        virtual
        override(AccessControlDefaultAdminRules, AccessControlEnumerable)
        returns (bool)
    {
        return super._revokeRole(role, account);
    }
}
