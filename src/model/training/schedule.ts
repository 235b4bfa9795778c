import { ModelError } from '../errors.js';

export interface LearningRateSchedule {
  /** The highest rate, reached at the last warmup step. */
  readonly peak: number;
  /** 0 starts at the peak. */
  readonly warmupSteps: number;
  readonly totalSteps: number;
  /** The rate at the last step, as a fraction of peak, in [0, 1]. */
  readonly minRatio: number;
}

function invalid(message: string): ModelError {
  return new ModelError('OPTIONS_INVALID', `learning-rate schedule: ${message}`);
}

function checkSchedule({ peak, warmupSteps, totalSteps, minRatio }: LearningRateSchedule): void {
  if (!Number.isFinite(peak) || peak <= 0) throw invalid(`peak must be a positive number, got ${peak}`);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw invalid(`totalSteps must be a positive integer, got ${totalSteps}`);
  if (!Number.isInteger(warmupSteps) || warmupSteps < 0 || warmupSteps > totalSteps) {
    throw invalid(`warmupSteps must be an integer in [0, totalSteps=${totalSteps}], got ${warmupSteps}`);
  }
  if (!Number.isFinite(minRatio) || minRatio < 0 || minRatio > 1) throw invalid(`minRatio must be in [0, 1], got ${minRatio}`);
}

/**
 * The rate for 0-based step: linear warmup peak * (step + 1) / warmupSteps, so step 0 already
 * trains and step warmupSteps - 1 is at the peak; then a cosine from the peak down to
 * peak * minRatio at step totalSteps - 1. When the warmup fills every step there is no decay.
 */
export function learningRateAt(step: number, schedule: LearningRateSchedule): number {
  checkSchedule(schedule);
  const { peak, warmupSteps, totalSteps, minRatio } = schedule;
  if (!Number.isInteger(step) || step < 0 || step >= totalSteps) {
    throw invalid(`step must be an integer in [0, ${totalSteps - 1}], got ${step}`);
  }
  if (step < warmupSteps) return (peak * (step + 1)) / warmupSteps;
  const decayStart = Math.max(warmupSteps - 1, 0);
  const decaySteps = totalSteps - 1 - decayStart;
  if (decaySteps === 0) return peak;
  const progress = (step - decayStart) / decaySteps;
  const minimum = peak * minRatio;
  return minimum + (peak - minimum) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
