// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {EnumerableSet} from "@openzeppelin/contracts/utils/structs/EnumerableSet.sol";
import {IAdmissionGate} from "./IAdmissionGate.sol";
import {ConsortiumMembership} from "./ConsortiumMembership.sol";
import {RoleQuorumVotes} from "./RoleQuorumVotes.sol";

/**
 * @title ParticipantRegistry
 * @notice Rule-based admission of supply-chain parties, in the spirit of ERC-3643.
 *
 * The consortium admin defines a rule per party role (supplier, bank, ...): the claim
 * topics a party must hold (business licence, ISO 9001 certificate, banking licence, ...)
 * and how many consortium members must approve its application (0: none). For each
 * topic the admin lists the issuers it trusts. An issuer signs an EIP-712 {Claim}
 * (subject, topic, issuer, data hash, issue time, expiry) under the domain `supET Participants`,
 * version `1`; anyone submits it with {addClaim}. Revoking a claim also revokes every claim of the
 * same issuer for the same subject and topic issued at or before it ({revokeBefore}), so an older
 * claim cannot be added again to undo a revocation. A party applies for a role with
 * {applyFor}; consortium members {approve}. The admin maps each action
 * (`keccak256("supet.device.enroll")`, ...) to the roles that may perform it.
 *
 * A party is admitted in a role while, at the current block: it has applied for the
 * role, every required claim is stored, unexpired, not revoked by its issuer and from an
 * issuer still trusted for the topic, enough current consortium members approved the
 * application, and the party is not suspended. Everything is checked when asked: an
 * expired or revoked claim, a distrusted issuer, a member who lost its seat or a raised
 * quorum lapse admission at once, with no keeper. {whyNotAdmitted} says what is missing.
 *
 * Consortium members are their own governance ({ConsortiumMembership}): the admin sets the first
 * members once, and afterwards a member is admitted or removed only by a majority of the current
 * members, so the admin alone cannot make the approvals a quorum counts. Nor can it lower the number
 * of approvals a role needs: the admin defines a role's rule and may raise its quorum, but a lower
 * quorum (0 above all) passes only by a majority of the members ({RoleQuorumVotes}). Nor can it route
 * an action around a quorum: once an action's roles were set, the admin may take roles away, but a
 * role is added only by a majority of the members ({proposeActionRole}); else the admin would define
 * a new role with quorum 0 and let it perform the action.
 *
 * This contract is the {IAdmissionGate} of every supET contract a party writes to.
 */
contract ParticipantRegistry is IAdmissionGate, RoleQuorumVotes, EIP712 {
    using EnumerableSet for EnumerableSet.AddressSet;
    using EnumerableSet for EnumerableSet.Bytes32Set;

    /// @notice The EIP-712 type hash of {Claim}.
    bytes32 public constant CLAIM_TYPEHASH =
        keccak256(
            "Claim(address subject,bytes32 topic,address issuer,bytes32 dataHash,uint64 issuedAt,uint64 expiresAt)"
        );
    /// @notice The most claim topics one role may require (bounds the cost of an admission check).
    uint256 public constant MAX_TOPICS = 8;
    /// @notice The most roles one action may be mapped to (bounds the cost of an admission check).
    uint256 public constant MAX_ROLES_PER_ACTION = 16;

    /// @notice A claim as an issuer signs it (EIP-712 struct `Claim`).
    struct Claim {
        address subject;
        bytes32 topic;
        address issuer;
        bytes32 dataHash;
        uint64 issuedAt;
        uint64 expiresAt;
    }

    /// @notice A claim as stored for its subject and topic (issuer zero: none). `id` is its
    /// EIP-712 digest. Issuer, expiry and revocation share one slot: an admission check reads
    /// one storage slot per claim, plus the issuer's trust. `revoked` is set by a revocation of
    /// this claim or of a later one of its issuer ({revokeBefore}).
    struct StoredClaim {
        address issuer;
        uint64 expiresAt;
        bool revoked;
        bytes32 id;
        bytes32 dataHash;
        uint64 issuedAt;
    }

    /// @notice The rule of a role: required claim topics and the approvals needed.
    struct RoleRule {
        bool defined;
        uint32 quorum;
        bytes32[] topics;
    }

    /// @notice A party's application for a role; `round` grows with each new application.
    struct Application {
        bool active;
        uint32 round;
        uint64 appliedAt;
    }

    /// @notice A party's suspension state and the reason given for its last change.
    struct Suspension {
        bool suspended;
        uint64 since;
        string reason;
    }

    /// @notice The state of a subject's claim for a topic, as counted now.
    enum ClaimState {
        Missing,
        Valid,
        Expired,
        Revoked,
        IssuerUntrusted
    }

    /// @notice Why a party is not admitted in a role ({Reason.Admitted} when it is).
    enum Reason {
        Admitted,
        UnknownRole,
        Suspended,
        NotApplied,
        MissingClaim,
        ClaimExpired,
        ClaimRevoked,
        IssuerUntrusted,
        NoQuorum
    }

    mapping(bytes32 role => RoleRule) private _rules;
    EnumerableSet.Bytes32Set private _partyRoles;
    mapping(bytes32 action => bytes32[]) private _actionRoles;
    mapping(bytes32 action => bool) private _actionRolesSet;
    mapping(bytes32 topic => EnumerableSet.AddressSet) private _trustedIssuers;
    mapping(address subject => mapping(bytes32 topic => StoredClaim)) private _claims;
    mapping(bytes32 claimId => bool) private _revoked;
    mapping(address subject => mapping(bytes32 topic => mapping(address issuer => uint64))) private _revokeBefore;
    mapping(address party => mapping(bytes32 role => Application)) private _applications;
    mapping(bytes32 ballot => address[]) private _approvers;
    mapping(bytes32 ballot => mapping(address member => bool)) private _approved;
    mapping(address party => Suspension) private _suspensions;

    /// @notice A role id of zero was given.
    error ParticipantRegistryZeroRole();
    /// @notice An action id of zero was given.
    error ParticipantRegistryZeroAction();
    /// @notice A claim topic of zero was given.
    error ParticipantRegistryZeroTopic();
    /// @notice The zero address was given where an account is needed.
    error ParticipantRegistryZeroAddress();
    /// @notice No rule is defined for this role.
    error ParticipantRegistryUnknownRole(bytes32 role);
    /// @notice A role may require at most `max` topics.
    error ParticipantRegistryTooManyTopics(uint256 count, uint256 max);
    /// @notice An action may be mapped to at most `max` roles.
    error ParticipantRegistryTooManyRoles(uint256 count, uint256 max);
    /// @notice A topic appears twice in a rule.
    error ParticipantRegistryDuplicateTopic(bytes32 topic);
    /// @notice A role appears twice in an action's roles.
    error ParticipantRegistryDuplicateRole(bytes32 role);
    /// @notice The quorum exceeds the number of consortium members.
    error ParticipantRegistryQuorumTooHigh(uint32 quorum, uint256 members);
    /// @notice `role`'s quorum is `current`: the consortium admin may not lower it to `quorum` alone; a
    /// majority of the members may ({proposeRoleQuorum}, {approveRoleQuorum}).
    error ParticipantRegistryQuorumLowerByVoteOnly(bytes32 role, uint32 current, uint32 quorum);
    /// @notice `action`'s roles were set already: the consortium admin may only take roles away; letting
    /// `role` perform it too is a majority of the members' decision ({proposeActionRole}, {approveActionRole}).
    error ParticipantRegistryActionRoleByVoteOnly(bytes32 action, bytes32 role);
    /// @notice `role` may perform `action` already.
    error ParticipantRegistryRoleAlreadyAllowed(bytes32 action, bytes32 role);
    /// @notice The issuer is already trusted for the topic.
    error ParticipantRegistryIssuerAlreadyTrusted(address issuer, bytes32 topic);
    /// @notice The issuer is not trusted for the topic.
    error ParticipantRegistryUntrustedIssuer(address issuer, bytes32 topic);
    /// @notice The signature is not the claim's issuer's (`signer` zero: malformed or malleable signature).
    error ParticipantRegistryBadSignature(address issuer, address signer);
    /// @notice The claim expires at or before the current block.
    error ParticipantRegistryClaimExpired(bytes32 claimId, uint64 expiresAt);
    /// @notice The claim was revoked by its issuer.
    error ParticipantRegistryClaimRevoked(bytes32 claimId);
    /// @notice The claim is already the subject's claim for its topic.
    error ParticipantRegistryClaimAlreadyAdded(bytes32 claimId);
    /// @notice Only the subject may replace its valid claim with one that does not expire later.
    error ParticipantRegistryClaimNotNewer(bytes32 currentClaimId, uint64 currentExpiresAt, uint64 expiresAt);
    /// @notice The claim was issued at `issuedAt`, before `revokeBefore`: its issuer revoked a claim for
    /// the same subject and topic issued at or after it, which revokes this one too.
    error ParticipantRegistryClaimRevokedBefore(bytes32 claimId, uint64 issuedAt, uint64 revokeBefore);
    /// @notice The claim was already revoked.
    error ParticipantRegistryClaimAlreadyRevoked(bytes32 claimId);
    /// @notice Only a claim's issuer may revoke it.
    error ParticipantRegistryNotIssuer(address caller, address issuer);
    /// @notice The party already has an active application for the role.
    error ParticipantRegistryAlreadyApplied(address party, bytes32 role);
    /// @notice The party has no active application for the role.
    error ParticipantRegistryNotApplied(address party, bytes32 role);
    /// @notice The caller is not a consortium member.
    error ParticipantRegistryNotMember(address account);
    /// @notice The member already approved this application.
    error ParticipantRegistryAlreadyApproved(address member, address party, bytes32 role);
    /// @notice A member may not approve its own application.
    error ParticipantRegistrySelfApproval(address member, bytes32 role);
    /// @notice The party is already suspended.
    error ParticipantRegistryAlreadySuspended(address party);
    /// @notice The party is not suspended.
    error ParticipantRegistryNotSuspended(address party);
    /// @notice A suspension or reinstatement needs a reason.
    error ParticipantRegistryEmptyReason();

    /// @notice The rule of a role was set (defined or changed, by the admin or a passed quorum proposal).
    event RoleRuleSet(bytes32 indexed role, bytes32[] topics, uint32 quorum);
    /// @notice The roles allowed to perform an action were set (empty: nobody), by the admin or a passed
    /// action-role proposal.
    event ActionRolesSet(bytes32 indexed action, bytes32[] roles);
    /// @notice An issuer became trusted for a topic.
    event TrustedIssuerAdded(bytes32 indexed topic, address indexed issuer);
    /// @notice An issuer stopped being trusted for a topic; its claims on it stop counting.
    event TrustedIssuerRemoved(bytes32 indexed topic, address indexed issuer);
    /// @notice A claim became the subject's claim for its topic.
    event ClaimAdded(
        address indexed subject,
        bytes32 indexed topic,
        address indexed issuer,
        bytes32 claimId,
        bytes32 dataHash,
        uint64 expiresAt
    );
    /// @notice An issuer revoked a claim it signed; it stops counting at once (or cannot be added).
    event ClaimRevoked(address indexed subject, bytes32 indexed topic, address indexed issuer, bytes32 claimId);
    /// @notice `issuer`'s claims for `subject` and `topic` issued before `revokeBefore` no longer count
    /// nor can be added (a revocation of the claim issued at `revokeBefore - 1`).
    event ClaimsRevokedBefore(
        address indexed subject,
        bytes32 indexed topic,
        address indexed issuer,
        uint64 revokeBefore
    );
    /// @notice A party applied for a role (round `round` of its applications for it).
    event Applied(address indexed party, bytes32 indexed role, uint32 round);
    /// @notice A party withdrew its application for a role (its approvals are dropped).
    event Withdrawn(address indexed party, bytes32 indexed role, uint32 round);
    /// @notice A consortium member approved an application; `approvals` counts the round's votes.
    event Approved(address indexed party, bytes32 indexed role, address indexed member, uint256 approvals);
    /// @notice The consortium suspended a party from every role.
    event Suspended(address indexed party, address indexed by, string reason);
    /// @notice The consortium reinstated a suspended party.
    event Reinstated(address indexed party, address indexed by, string reason);

    /**
     * @param admin Receives the default admin (handed over in two steps, {ADMIN_TRANSFER_DELAY}) and
     * consortium admin roles; not zero (`AccessControlInvalidDefaultAdmin`).
     */
    constructor(address admin) ConsortiumMembership(admin) EIP712("supET Participants", "1") {}

    // ------------------------------------------------------------------ consortium admin

    /**
     * @notice Define or change the rule of a party role. A change applies at once to every party.
     * @dev A defined role's quorum only rises here ({ParticipantRegistryQuorumLowerByVoteOnly}): the
     * members lower it ({proposeRoleQuorum}).
     * @param role The role id, e.g. `keccak256("supet.party.supplier")`.
     * @param topics The claim topics a party must hold (distinct, non-zero, at most {MAX_TOPICS}).
     * @param quorum How many consortium members must approve an application (0: none); at most
     * the current number of members, and for a defined role at least its current quorum.
     */
    function setRoleRule(bytes32 role, bytes32[] calldata topics, uint32 quorum)
        external
        onlyRole(CONSORTIUM_ADMIN_ROLE)
    {
        _setRoleRule(role, topics, quorum);
    }

    /**
     * @notice Set which roles may perform an action (replacing the previous list).
     * @dev The first call for an action sets any roles. Afterwards (even after a first empty list) only
     * roles it has already may be listed: the admin narrows an action alone, while letting another role
     * perform it, which could be a role with a lower quorum made for the purpose, is the members'
     * ({ParticipantRegistryActionRoleByVoteOnly}; {proposeActionRole}).
     * @param action The action id, e.g. `keccak256("supet.device.enroll")`.
     * @param allowedRoles Defined, distinct roles (at most {MAX_ROLES_PER_ACTION}); empty: nobody. Once
     * the action's roles were set, each one of its current roles.
     */
    function setActionRoles(bytes32 action, bytes32[] calldata allowedRoles)
        external
        onlyRole(CONSORTIUM_ADMIN_ROLE)
    {
        _setActionRoles(action, allowedRoles);
    }

    /**
     * @notice Trust an issuer for a claim topic.
     * @param topic The claim topic.
     * @param issuer The issuer's signing address.
     */
    function addTrustedIssuer(bytes32 topic, address issuer) external onlyRole(CONSORTIUM_ADMIN_ROLE) {
        _addTrustedIssuer(topic, issuer);
    }

    /**
     * @notice Stop trusting an issuer for a topic: its claims on the topic stop counting at once.
     * @param topic The claim topic.
     * @param issuer The issuer's signing address.
     */
    function removeTrustedIssuer(bytes32 topic, address issuer) external onlyRole(CONSORTIUM_ADMIN_ROLE) {
        _removeTrustedIssuer(topic, issuer);
    }

    /**
     * @notice Suspend a party from every role; it is not admitted for anything until reinstated.
     * @param party The party.
     * @param reason Why (kept on chain, non-empty).
     */
    function suspend(address party, string calldata reason) external onlyRole(CONSORTIUM_ADMIN_ROLE) {
        _suspend(party, reason);
    }

    /**
     * @notice Lift a party's suspension.
     * @param party The party.
     * @param reason Why (kept on chain, non-empty).
     */
    function reinstate(address party, string calldata reason) external onlyRole(CONSORTIUM_ADMIN_ROLE) {
        _reinstate(party, reason);
    }

    // ------------------------------------------------------------------ issuers and claims

    /**
     * @notice Store an issuer-signed claim as its subject's claim for its topic. Anyone may submit.
     * @dev The signature must be the claim issuer's (ECDSA, 65 bytes, low-S: one encoding per
     * signature) over the EIP-712 digest, which is also the claim's id. The subject may replace
     * its claim for the topic with any valid one; anyone else only with one that expires later,
     * unless the current one no longer counts (so an old claim cannot be replayed to shorten an
     * admission).
     * @param claim The claim.
     * @param signature The issuer's signature.
     * @return claimId The claim's id (its EIP-712 digest).
     */
    function addClaim(Claim calldata claim, bytes calldata signature) external returns (bytes32 claimId) {
        claimId = claimIdOf(claim);
        _checkClaim(claim, claimId, signature);
        _storeClaim(claim, claimId);
    }

    /**
     * @notice Revoke a claim the caller issued, stored or not: it, and every claim of the caller for
     * the same subject and topic issued at or before it, stop counting (or can no longer be added)
     * from this block on. A claim issued later is unaffected: to restore a subject, sign a new one.
     * @dev The claim itself is passed (its issuer holds it; a stored one can also be rebuilt from
     * {claimOf}), so that only its issuer may revoke it and a stored claim is flagged in the
     * slot an admission check reads anyway.
     * @param claim The claim, as signed.
     * @return claimId The claim's id.
     */
    function revokeClaim(Claim calldata claim) external returns (bytes32 claimId) {
        if (msg.sender != claim.issuer) revert ParticipantRegistryNotIssuer(msg.sender, claim.issuer);
        claimId = claimIdOf(claim);
        _revokeClaim(claim, claimId);
    }

    // ------------------------------------------------------------------ parties and members

    /**
     * @notice Apply for a role as the caller. Starts a new round: approvals of earlier rounds do not count.
     * @dev Named `applyFor` because `apply` is a reserved word in Solidity.
     * @param role A defined role.
     */
    function applyFor(bytes32 role) external {
        _apply(msg.sender, role);
    }

    /**
     * @notice Withdraw the caller's application for a role (its approvals are dropped).
     * @param role The role.
     */
    function withdraw(bytes32 role) external {
        _withdraw(msg.sender, role);
    }

    /**
     * @notice Approve a party's active application for a role, as a consortium member (one vote each).
     * @param party The applicant.
     * @param role The role applied for.
     */
    function approve(address party, bytes32 role) external {
        if (!hasRole(CONSORTIUM_MEMBER_ROLE, msg.sender)) revert ParticipantRegistryNotMember(msg.sender);
        _approve(msg.sender, party, role);
    }

    // ------------------------------------------------------------------ admission views

    /// @inheritdoc IAdmissionGate
    function isAdmitted(address party, bytes32 action) external view returns (bool) {
        if (_suspensions[party].suspended) return false;
        bytes32[] storage allowed = _actionRoles[action];
        uint256 n = allowed.length;
        for (uint256 i = 0; i < n; ++i) {
            (Reason reason,,,) = _status(party, allowed[i]);
            if (reason == Reason.Admitted) return true;
        }
        return false;
    }

    /**
     * @notice Whether `party` is admitted in `role` at this block.
     * @param party The party.
     * @param role The role.
     * @return True when {whyNotAdmitted} answers {Reason.Admitted}.
     */
    function isAdmittedAs(address party, bytes32 role) external view returns (bool) {
        (Reason reason,,,) = _status(party, role);
        return reason == Reason.Admitted;
    }

    /**
     * @notice Why `party` is not admitted in `role` at this block: the first unmet condition,
     * in the order unknown role, suspension, application, claims (in the rule's order), quorum.
     * @param party The party.
     * @param role The role.
     * @return reason {Reason.Admitted} when admitted.
     * @return topic The claim topic at fault (claim reasons only, else zero).
     * @return approvals Approvals by current members (up to `needed`).
     * @return needed The rule's quorum.
     */
    function whyNotAdmitted(address party, bytes32 role)
        external
        view
        returns (Reason reason, bytes32 topic, uint256 approvals, uint256 needed)
    {
        return _status(party, role);
    }

    /**
     * @notice The state of `subject`'s claim for `topic`, as counted at this block.
     * @param subject The claim's subject.
     * @param topic The claim topic.
     * @return The state (Missing, Valid, Expired, Revoked, IssuerUntrusted).
     */
    function claimState(address subject, bytes32 topic) external view returns (ClaimState) {
        return _claimState(subject, topic);
    }

    // ------------------------------------------------------------------ other views

    /**
     * @notice The id of a claim: the EIP-712 digest its issuer signs.
     * @param claim The claim.
     * @return The digest under this registry's domain.
     */
    function claimIdOf(Claim calldata claim) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CLAIM_TYPEHASH,
                    claim.subject,
                    claim.topic,
                    claim.issuer,
                    claim.dataHash,
                    claim.issuedAt,
                    claim.expiresAt
                )
            )
        );
    }

    /**
     * @notice The revocation epoch of `issuer`'s claims for `subject` and `topic`: a claim of theirs
     * issued before it does not count and cannot be added (0: none revoked).
     */
    function revokeBefore(address subject, bytes32 topic, address issuer) external view returns (uint64) {
        return _revokeBefore[subject][topic][issuer];
    }

    /// @notice `subject`'s stored claim for `topic` (issuer zero: none), whether or not it counts now.
    function claimOf(address subject, bytes32 topic) external view returns (StoredClaim memory) {
        return _claims[subject][topic];
    }

    /// @notice Whether the claim `claimId` was revoked by its issuer.
    function isClaimRevoked(bytes32 claimId) external view returns (bool) {
        return _revoked[claimId];
    }

    /// @notice Whether `issuer` is trusted for `topic`.
    function isTrustedIssuer(bytes32 topic, address issuer) external view returns (bool) {
        return _trustedIssuers[topic].contains(issuer);
    }

    /// @notice The issuers trusted for `topic`.
    function trustedIssuers(bytes32 topic) external view returns (address[] memory) {
        return _trustedIssuers[topic].values();
    }

    /// @notice The rule of `role` (`defined` false: no rule).
    function roleRule(bytes32 role) external view returns (RoleRule memory) {
        return _rules[role];
    }

    /// @notice Every role that has a rule.
    function roles() external view returns (bytes32[] memory) {
        return _partyRoles.values();
    }

    /// @notice The roles allowed to perform `action`.
    function actionRoles(bytes32 action) external view returns (bytes32[] memory) {
        return _actionRoles[action];
    }

    /// @notice Whether `action`'s roles were set (then the admin only narrows them; a role is added by vote).
    function actionRolesSet(bytes32 action) external view returns (bool) {
        return _actionRolesSet[action];
    }

    /// @notice `party`'s application for `role` (the latest round, active or withdrawn).
    function application(address party, bytes32 role) external view returns (Application memory) {
        return _applications[party][role];
    }

    /// @notice Who approved `party`'s current application for `role` (members or not any more).
    function approvers(address party, bytes32 role) external view returns (address[] memory) {
        return _approvers[_ballot(party, role)];
    }

    /// @notice Whether `member` approved `party`'s current application for `role`.
    function hasApproved(address member, address party, bytes32 role) external view returns (bool) {
        return _approved[_ballot(party, role)][member];
    }

    /// @notice `party`'s suspension state and the reason for its last change.
    function suspension(address party) external view returns (Suspension memory) {
        return _suspensions[party];
    }

    /// @inheritdoc ConsortiumMembership
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IAdmissionGate).interfaceId || super.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------ internal: writes

    /// @dev Validates and stores a role rule; the caller checked the permission.
    function _setRoleRule(bytes32 role, bytes32[] calldata topics, uint32 quorum) private {
        if (role == bytes32(0)) revert ParticipantRegistryZeroRole();
        if (topics.length > MAX_TOPICS) revert ParticipantRegistryTooManyTopics(topics.length, MAX_TOPICS);
        for (uint256 i = 0; i < topics.length; ++i) {
            if (topics[i] == bytes32(0)) revert ParticipantRegistryZeroTopic();
            for (uint256 j = 0; j < i; ++j) {
                if (topics[j] == topics[i]) revert ParticipantRegistryDuplicateTopic(topics[i]);
            }
        }
        uint256 members = getRoleMemberCount(CONSORTIUM_MEMBER_ROLE);
        if (quorum > members) revert ParticipantRegistryQuorumTooHigh(quorum, members);
        RoleRule storage rule = _rules[role];
        if (rule.defined && quorum < rule.quorum) {
            revert ParticipantRegistryQuorumLowerByVoteOnly(role, rule.quorum, quorum);
        }
        rule.defined = true;
        rule.quorum = quorum;
        rule.topics = topics;
        _partyRoles.add(role);
        emit RoleRuleSet(role, topics, quorum);
    }

    /// @dev A passed quorum proposal ({RoleQuorumVotes}) lowers the rule's quorum; its topics stay.
    function _setQuorumByVote(bytes32 role, uint32 quorum) internal override {
        RoleRule storage rule = _rules[role];
        rule.quorum = quorum;
        emit RoleRuleSet(role, rule.topics, quorum);
    }

    /// @dev Validates and stores an action's roles; the caller checked the permission.
    function _setActionRoles(bytes32 action, bytes32[] calldata allowedRoles) private {
        if (action == bytes32(0)) revert ParticipantRegistryZeroAction();
        if (allowedRoles.length > MAX_ROLES_PER_ACTION) {
            revert ParticipantRegistryTooManyRoles(allowedRoles.length, MAX_ROLES_PER_ACTION);
        }
        bool narrowOnly = _actionRolesSet[action];
        for (uint256 i = 0; i < allowedRoles.length; ++i) {
            if (!_rules[allowedRoles[i]].defined) revert ParticipantRegistryUnknownRole(allowedRoles[i]);
            for (uint256 j = 0; j < i; ++j) {
                if (allowedRoles[j] == allowedRoles[i]) revert ParticipantRegistryDuplicateRole(allowedRoles[i]);
            }
            if (narrowOnly && !_allows(action, allowedRoles[i])) {
                revert ParticipantRegistryActionRoleByVoteOnly(action, allowedRoles[i]);
            }
        }
        _actionRolesSet[action] = true;
        _actionRoles[action] = allowedRoles;
        emit ActionRolesSet(action, allowedRoles);
    }

    /// @dev Refuses an action-role proposal that could not pass: a zero action, a role without a rule,
    /// a role allowed already, an action without room for one more role.
    function _checkActionRoleProposal(bytes32 action, bytes32 role) internal view override {
        if (action == bytes32(0)) revert ParticipantRegistryZeroAction();
        if (!_rules[role].defined) revert ParticipantRegistryUnknownRole(role);
        if (_allows(action, role)) revert ParticipantRegistryRoleAlreadyAllowed(action, role);
        uint256 count = _actionRoles[action].length + 1;
        if (count > MAX_ROLES_PER_ACTION) revert ParticipantRegistryTooManyRoles(count, MAX_ROLES_PER_ACTION);
    }

    /// @dev A passed action-role proposal ({RoleQuorumVotes}) adds the role to the action's roles (nothing
    /// when the admin listed it meanwhile, setting the action's roles for the first time).
    function _allowActionRoleByVote(bytes32 action, bytes32 role) internal override {
        _actionRolesSet[action] = true;
        if (_allows(action, role)) return;
        bytes32[] storage current = _actionRoles[action];
        uint256 count = current.length + 1;
        if (count > MAX_ROLES_PER_ACTION) revert ParticipantRegistryTooManyRoles(count, MAX_ROLES_PER_ACTION);
        current.push(role);
        emit ActionRolesSet(action, current);
    }

    /// @dev Adds `issuer` to the topic's trusted set; the caller checked the permission.
    function _addTrustedIssuer(bytes32 topic, address issuer) private {
        if (topic == bytes32(0)) revert ParticipantRegistryZeroTopic();
        if (issuer == address(0)) revert ParticipantRegistryZeroAddress();
        if (!_trustedIssuers[topic].add(issuer)) revert ParticipantRegistryIssuerAlreadyTrusted(issuer, topic);
        emit TrustedIssuerAdded(topic, issuer);
    }

    /// @dev Removes `issuer` from the topic's trusted set; the caller checked the permission.
    function _removeTrustedIssuer(bytes32 topic, address issuer) private {
        if (!_trustedIssuers[topic].remove(issuer)) revert ParticipantRegistryUntrustedIssuer(issuer, topic);
        emit TrustedIssuerRemoved(topic, issuer);
    }

    /// @dev Records a suspension and its reason; the caller checked the permission.
    function _suspend(address party, string calldata reason) private {
        if (party == address(0)) revert ParticipantRegistryZeroAddress();
        if (bytes(reason).length == 0) revert ParticipantRegistryEmptyReason();
        Suspension storage s = _suspensions[party];
        if (s.suspended) revert ParticipantRegistryAlreadySuspended(party);
        s.suspended = true;
        s.since = uint64(block.timestamp);
        s.reason = reason;
        emit Suspended(party, msg.sender, reason);
    }

    /// @dev Lifts a suspension, recording the reason; the caller checked the permission.
    function _reinstate(address party, string calldata reason) private {
        if (bytes(reason).length == 0) revert ParticipantRegistryEmptyReason();
        Suspension storage s = _suspensions[party];
        if (!s.suspended) revert ParticipantRegistryNotSuspended(party);
        s.suspended = false;
        s.since = uint64(block.timestamp);
        s.reason = reason;
        emit Reinstated(party, msg.sender, reason);
    }

    /// @dev Refuses a claim that is not, at this block, a valid claim signed by an issuer trusted for its topic.
    function _checkClaim(Claim calldata claim, bytes32 claimId, bytes calldata signature) private view {
        if (claim.subject == address(0) || claim.issuer == address(0)) revert ParticipantRegistryZeroAddress();
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(claimId, signature);
        if (err != ECDSA.RecoverError.NoError || signer != claim.issuer) {
            revert ParticipantRegistryBadSignature(claim.issuer, signer);
        }
        if (!_trustedIssuers[claim.topic].contains(claim.issuer)) {
            revert ParticipantRegistryUntrustedIssuer(claim.issuer, claim.topic);
        }
        if (claim.expiresAt <= block.timestamp) revert ParticipantRegistryClaimExpired(claimId, claim.expiresAt);
        if (_revoked[claimId]) revert ParticipantRegistryClaimRevoked(claimId);
        uint64 epoch = _revokeBefore[claim.subject][claim.topic][claim.issuer];
        if (claim.issuedAt < epoch) revert ParticipantRegistryClaimRevokedBefore(claimId, claim.issuedAt, epoch);
    }

    /// @dev Makes a checked claim its subject's claim for the topic, under the replacement rule of {addClaim}.
    function _storeClaim(Claim calldata claim, bytes32 claimId) private {
        StoredClaim storage current = _claims[claim.subject][claim.topic];
        if (current.id == claimId) revert ParticipantRegistryClaimAlreadyAdded(claimId);
        if (
            msg.sender != claim.subject && _claimState(claim.subject, claim.topic) == ClaimState.Valid
                && claim.expiresAt <= current.expiresAt
        ) {
            revert ParticipantRegistryClaimNotNewer(current.id, current.expiresAt, claim.expiresAt);
        }
        _claims[claim.subject][claim.topic] = StoredClaim({
            issuer: claim.issuer,
            expiresAt: claim.expiresAt,
            revoked: false,
            id: claimId,
            dataHash: claim.dataHash,
            issuedAt: claim.issuedAt
        });
        emit ClaimAdded(claim.subject, claim.topic, claim.issuer, claimId, claim.dataHash, claim.expiresAt);
    }

    /// @dev Records the revocation, raises the issuer's revocation epoch for the subject and topic past
    /// the claim's issue time, and flags the stored claim if it is this one or an older one of the same
    /// issuer; the caller is the issuer.
    function _revokeClaim(Claim calldata claim, bytes32 claimId) private {
        if (_revoked[claimId]) revert ParticipantRegistryClaimAlreadyRevoked(claimId);
        _revoked[claimId] = true;
        uint64 epoch = _revokeBefore[claim.subject][claim.topic][claim.issuer];
        if (claim.issuedAt >= epoch && claim.issuedAt < type(uint64).max) {
            epoch = claim.issuedAt + 1;
            _revokeBefore[claim.subject][claim.topic][claim.issuer] = epoch;
            emit ClaimsRevokedBefore(claim.subject, claim.topic, claim.issuer, epoch);
        }
        StoredClaim storage stored = _claims[claim.subject][claim.topic];
        if (stored.id == claimId || (stored.issuer == claim.issuer && stored.issuedAt < epoch)) {
            stored.revoked = true;
        }
        emit ClaimRevoked(claim.subject, claim.topic, claim.issuer, claimId);
    }

    /// @dev Opens a new application round for `party` (the caller itself).
    function _apply(address party, bytes32 role) private {
        if (!_rules[role].defined) revert ParticipantRegistryUnknownRole(role);
        Application storage app = _applications[party][role];
        if (app.active) revert ParticipantRegistryAlreadyApplied(party, role);
        app.active = true;
        app.round += 1;
        app.appliedAt = uint64(block.timestamp);
        emit Applied(party, role, app.round);
    }

    /// @dev Closes `party`'s active application; its round's approvals stop counting.
    function _withdraw(address party, bytes32 role) private {
        Application storage app = _applications[party][role];
        if (!app.active) revert ParticipantRegistryNotApplied(party, role);
        app.active = false;
        emit Withdrawn(party, role, app.round);
    }

    /// @dev Records `member`'s vote on the current round; the caller checked membership.
    function _approve(address member, address party, bytes32 role) private {
        if (!_rules[role].defined) revert ParticipantRegistryUnknownRole(role);
        if (!_applications[party][role].active) revert ParticipantRegistryNotApplied(party, role);
        if (member == party) revert ParticipantRegistrySelfApproval(member, role);
        bytes32 ballot = _ballot(party, role);
        if (_approved[ballot][member]) revert ParticipantRegistryAlreadyApproved(member, party, role);
        _approved[ballot][member] = true;
        _approvers[ballot].push(member);
        emit Approved(party, role, member, _approvers[ballot].length);
    }

    // ------------------------------------------------------------------ internal: reads

    /// @dev The quorum of a role with a rule ({ParticipantRegistryUnknownRole} otherwise).
    function _roleQuorum(bytes32 role) internal view override returns (uint32) {
        RoleRule storage rule = _rules[role];
        if (!rule.defined) revert ParticipantRegistryUnknownRole(role);
        return rule.quorum;
    }

    /// @dev Whether `role` is one of `action`'s roles.
    function _allows(bytes32 action, bytes32 role) private view returns (bool) {
        bytes32[] storage current = _actionRoles[action];
        uint256 n = current.length;
        for (uint256 i = 0; i < n; ++i) {
            if (current[i] == role) return true;
        }
        return false;
    }

    /// @dev The key of a party's current application round for a role.
    function _ballot(address party, bytes32 role) private view returns (bytes32) {
        return keccak256(abi.encode(party, role, _applications[party][role].round));
    }

    /// @dev The state of a stored claim at this block: revocation, expiry, then issuer trust.
    function _claimState(address subject, bytes32 topic) private view returns (ClaimState) {
        StoredClaim storage c = _claims[subject][topic];
        if (c.issuer == address(0)) return ClaimState.Missing;
        if (c.revoked) return ClaimState.Revoked;
        if (c.expiresAt <= block.timestamp) return ClaimState.Expired;
        if (!_trustedIssuers[topic].contains(c.issuer)) return ClaimState.IssuerUntrusted;
        return ClaimState.Valid;
    }

    /// @dev The first unmet admission condition of `party` in `role` (see {whyNotAdmitted}).
    function _status(address party, bytes32 role)
        private
        view
        returns (Reason reason, bytes32 topic, uint256 approvals, uint256 needed)
    {
        RoleRule storage rule = _rules[role];
        if (!rule.defined) return (Reason.UnknownRole, bytes32(0), 0, 0);
        needed = rule.quorum;
        if (_suspensions[party].suspended) return (Reason.Suspended, bytes32(0), 0, needed);
        if (!_applications[party][role].active) return (Reason.NotApplied, bytes32(0), 0, needed);
        uint256 n = rule.topics.length;
        for (uint256 i = 0; i < n; ++i) {
            bytes32 t = rule.topics[i];
            ClaimState state = _claimState(party, t);
            if (state != ClaimState.Valid) return (_claimReason(state), t, 0, needed);
        }
        if (needed > 0) {
            address[] storage voters = _approvers[_ballot(party, role)];
            uint256 m = voters.length;
            for (uint256 i = 0; i < m && approvals < needed; ++i) {
                if (hasRole(CONSORTIUM_MEMBER_ROLE, voters[i])) ++approvals;
            }
            if (approvals < needed) return (Reason.NoQuorum, bytes32(0), approvals, needed);
        }
        return (Reason.Admitted, bytes32(0), approvals, needed);
    }

    /// @dev The admission reason for a claim state other than Valid.
    function _claimReason(ClaimState state) private pure returns (Reason) {
        if (state == ClaimState.Missing) return Reason.MissingClaim;
        if (state == ClaimState.Expired) return Reason.ClaimExpired;
        if (state == ClaimState.Revoked) return Reason.ClaimRevoked;
        return Reason.IssuerUntrusted;
    }
}
