/**
 * Personal data in what leaves the stores (SPEC "Trust (v1.1)"): what a person typed (a comment, a pause, resume or
 * abort reason) is opened for readers entitled to it, and otherwise shown with e-mail addresses, phone numbers and
 * tokens masked. The checkpoint policy's `personalData` says whether events and the audit trail as Compliance reads it
 * show them (`show`) or mask them (`mask`, the default).
 *
 * Who sees what (docs/decisions.md, "Who reads a person's words"):
 * - the run's own team (and its submitter) on the status page: the words as typed;
 * - everyone else on the status page, every reader of `GET /pipeline/logs`, and every event: masked, unless the
 *   policy says `show`.
 */
import { type AuditRecord, maskPii, maskPiiText } from './audit';
import type { CheckpointPolicy } from './policy';
import type { Principal } from './principal';
import type { RunDoc } from './run';

export const PERSONAL_DATA_MODES = ['mask', 'show'] as const;
export type PersonalDataMode = (typeof PERSONAL_DATA_MODES)[number];

/** The policy's setting; absent (every policy written before it existed) is `mask`. */
export function personalDataOf(policy: Pick<CheckpointPolicy, 'personalData'>): PersonalDataMode {
    return policy.personalData ?? 'mask';
}

/** Whether `reader` sees a run's words unmasked on its status page: the run's team and its submitter do. */
export function readsOwnWords(reader: Principal, run: Pick<RunDoc, 'metadata' | 'createdBy'>): boolean {
    return reader.id === run.createdBy || reader.teams.includes(run.metadata.team);
}

/**
 * A record as shown under `mode`: for `mask`, its `reason` and every string of its `details` go through the PII
 * masking (details are masked when stored already; reasons are not, and sealed words are masked only once opened).
 * Never hash or verify what this returns: the chain covers the stored form.
 */
export function recordAs(record: AuditRecord, mode: PersonalDataMode): AuditRecord {
    if (mode === 'show') return record;
    return {
        ...record,
        ...(record.reason !== undefined ? { reason: maskPiiText(record.reason) } : {}),
        ...(record.details !== undefined ? { details: maskPii(record.details) } : {}),
    };
}
