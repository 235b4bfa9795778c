import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ModelError } from '../../../src/model/errors.js';
import { learningRateAt, type LearningRateSchedule } from '../../../src/model/training/schedule.js';

const schedule: LearningRateSchedule = { peak: 1e-3, warmupSteps: 4, totalSteps: 12, minRatio: 0.1 };

function near(actual: number, expected: number): void {
  assert.ok(Math.abs(actual - expected) <= 1e-15, `expected ${expected}, got ${actual}`);
}

describe('learningRateAt', () => {
  it('warms up linearly from peak / warmupSteps at step 0 to the peak at step warmupSteps - 1', () => {
    near(learningRateAt(0, schedule), 0.25e-3);
    near(learningRateAt(1, schedule), 0.5e-3);
    near(learningRateAt(2, schedule), 0.75e-3);
    near(learningRateAt(3, schedule), 1e-3);
  });

  it('decays along a cosine from the peak to peak * minRatio at the last step', () => {
    // The decay runs from step 3 (peak) to step 11 (minimum): 8 steps, so step 7 is half-way.
    near(learningRateAt(7, schedule), 0.1e-3 + 0.9e-3 * 0.5);
    near(learningRateAt(5, schedule), 0.1e-3 + 0.9e-3 * 0.5 * (1 + Math.cos(Math.PI / 4)));
    near(learningRateAt(11, schedule), 0.1e-3);
  });

  it('rises through the warmup and never rises after it', () => {
    const long: LearningRateSchedule = { peak: 6e-4, warmupSteps: 50, totalSteps: 1000, minRatio: 0 };
    const rates = Array.from({ length: long.totalSteps }, (_, step) => learningRateAt(step, long));
    for (let step = 1; step < long.warmupSteps; step++) assert.ok(rates[step] > rates[step - 1], `warmup step ${step}`);
    for (let step = long.warmupSteps; step < long.totalSteps; step++) assert.ok(rates[step] <= rates[step - 1], `decay step ${step}`);
    assert.equal(Math.max(...rates), long.peak);
    near(rates[long.totalSteps - 1], 0);
  });

  it('starts at the peak without warmup, and stays at the peak when the warmup fills every step', () => {
    near(learningRateAt(0, { ...schedule, warmupSteps: 0 }), 1e-3);
    near(learningRateAt(11, { ...schedule, warmupSteps: 0 }), 0.1e-3);
    near(learningRateAt(11, { ...schedule, warmupSteps: 12 }), 1e-3);
    near(learningRateAt(0, { peak: 2, warmupSteps: 0, totalSteps: 1, minRatio: 0 }), 2);
  });

  it('rejects steps outside the schedule and invalid settings', () => {
    const invalid = (step: number, settings: LearningRateSchedule, pattern: RegExp) =>
      assert.throws(() => learningRateAt(step, settings), (error: unknown) => error instanceof ModelError && error.code === 'OPTIONS_INVALID' && pattern.test(error.message));
    invalid(12, schedule, /step must be an integer in \[0, 11\], got 12/);
    invalid(-1, schedule, /step/);
    invalid(1.5, schedule, /step/);
    invalid(0, { ...schedule, peak: 0 }, /peak/);
    invalid(0, { ...schedule, peak: Number.NaN }, /peak/);
    invalid(0, { ...schedule, warmupSteps: 13 }, /warmupSteps/);
    invalid(0, { ...schedule, totalSteps: 0 }, /totalSteps/);
    invalid(0, { ...schedule, minRatio: 1.5 }, /minRatio/);
  });
});
