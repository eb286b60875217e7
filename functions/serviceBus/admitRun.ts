/**
 * admitRun: the Service Bus–triggered admitter. Each message names a queued run; the run's workflow starts once it
 * holds one of `MESH_RUN_CAPACITY` slots. With no slot free within `MESH_ADMISSION_WAIT_MS`, the handler throws, the
 * host abandons the message and it is delivered again from its place in the queue: runs are admitted in order and
 * none is lost. (host.json's `maxConcurrentCalls`, 8, bounds how far order can bend: at most that many deliveries
 * per instance are in flight; 1 gives strict order at about half the admission rate.) Locally the embedded host's
 * queue delivers the same messages with the same peek-lock semantics.
 */
import { app, InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

import { scaleConfig } from '../../adapters/config';
import { atRegistration } from '../../adapters/configCheck';
import { type Deps, deps } from '../../adapters/deps';
import { durableClient, orchestrationOf } from '../../adapters/http/request';
import { type AdmissionOutcome, admitRun as admit, CapacityWaitError } from '../../domain/admission';
import type { AdmissionMessage } from '../../domain/ports';
import { checkpointSpecsOf } from '../../domain/submit';
import { MeshPipeline, type PipelineInput } from '../../orchestrators/meshPipeline/contract';

export async function admitRun(
    message: unknown,
    ctx: InvocationContext,
    d: Pick<Deps, 'runs' | 'slots' | 'slotFreed' | 'reclaimSlots' | 'now' | 'admission'>,
): Promise<AdmissionOutcome | 'malformed' | 'requeued'> {
    const m = message as Partial<AdmissionMessage> | null;
    if (typeof m?.runId !== 'string' || m.runId === '') {
        // Delivering it again cannot help: complete it, and say so.
        ctx.error(`admitRun: a message without a run id was dropped: ${JSON.stringify(message).slice(0, 200)}`);
        return 'malformed';
    }
    const { capacity, admissionWaitMs, requeueAfterDeliveries } = scaleConfig();
    const client = durableClient(ctx);
    const admitting = admit(
        {
            runs: d.runs,
            slots: d.slots,
            started: async (runId) => (await orchestrationOf(ctx, runId)) !== undefined,
            start: async (run) => {
                const input: PipelineInput = {
                    runId: run.id,
                    checkpoints: checkpointSpecsOf(run),
                    maxIterations: run.maxIterations,
                    correlationID: run.correlationID,
                    traceparent: run.traceparent,
                };
                await client.startNew(MeshPipeline.name, { instanceId: run.id, input });
            },
            slotFreed: (ms) => d.slotFreed(ms),
            reclaim: () => d.reclaimSlots(),
            now: () => d.now().getTime(),
        },
        { runId: m.runId, correlationID: m.correlationID ?? '' },
        { capacity, waitMs: admissionWaitMs },
    );
    let outcome: AdmissionOutcome;
    try {
        outcome = await admitting;
    } catch (e: unknown) {
        // Capacity stayed full for nearly every delivery the queue allows: send the run to the back of the queue
        // rather than let the queue dead-letter it (it would stay Queued with nothing to admit it).
        const deliveries = Number((ctx.triggerMetadata as { deliveryCount?: unknown } | undefined)?.deliveryCount);
        if (!(e instanceof CapacityWaitError) || !(deliveries >= requeueAfterDeliveries)) throw e;
        await d.admission.enqueue({ runId: m.runId, correlationID: m.correlationID ?? '' });
        ctx.warn(`admitRun: run ${m.runId} waited ${deliveries} deliveries for a slot; queued again at the back`);
        return 'requeued';
    }
    if (outcome === 'unknown-run') ctx.warn(`admitRun: run ${m.runId} does not exist; message completed`);
    return outcome;
}

app.serviceBusQueue('admitRun', {
    queueName: atRegistration(() => scaleConfig().admissionQueue, 'mesh-admission'),
    connection: 'ServiceBusConnection',
    extraInputs: [df.input.durableClient()],
    handler: async (message: unknown, ctx: InvocationContext) => {
        await admitRun(message, ctx, deps());
    },
});
