import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AutoScalingGroup } from 'aws-cdk-lib/aws-autoscaling';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import { DefinitionBody, Pass, StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import { Monitoring, metricsNamespace } from '../../lib/monitoring.js';
import { testApp } from './helpers.js';

let template: Template;
let monitoring: Monitoring;

beforeAll(() => {
  const stack = new Stack(testApp(), 'Monitoring');
  monitoring = new Monitoring(stack, 'Monitoring', {
    poolName: 'web',
    availabilityZones: ['eu-west-1a'],
    idlePerAz: 3,
  });
  const sm = new StateMachine(stack, 'Acquire', {
    definitionBody: DefinitionBody.fromChainable(new Pass(stack, 'Go')),
  });
  // Added after the dashboard exists: the alarm widget must still list them.
  monitoring.alarmOnFailedExecutions(sm, 'Acquire');
  monitoring.alarmOnMissingWorker(
    AutoScalingGroup.fromAutoScalingGroupName(stack, 'Worker', 'worker-a'),
    '0',
  );
  monitoring.alarmOnMetric('SyncLag', new Metric({ namespace: metricsNamespace, metricName: 'SyncLag' }), {
    threshold: 300,
    description: 'sync lag over 5 minutes',
  });
  template = Template.fromStack(stack);
});

describe('Monitoring', () => {
  it('alarms on failed, timed out or aborted executions of a state machine', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Metrics: Match.arrayWith([
        Match.objectLike({ Expression: 'FILL(failed, 0) + FILL(timedOut, 0) + FILL(aborted, 0)' }),
        Match.objectLike({
          Id: 'failed',
          MetricStat: Match.objectLike({ Metric: Match.objectLike({ MetricName: 'ExecutionsFailed' }) }),
        }),
      ]),
      Threshold: 1,
    });
  });

  it('alarms on any metric it is given, to the alarm topic', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'SyncLag',
      Threshold: 300,
      AlarmActions: [{ Ref: Match.stringLikeRegexp('AlarmTopic') }],
      OKActions: [{ Ref: Match.stringLikeRegexp('AlarmTopic') }],
    });
  });

  it('lists alarms added later in the dashboard', () => {
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard?.Properties.DashboardBody);
    const syncLag = Object.keys(
      template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'SyncLag' } }),
    );
    expect(syncLag).toHaveLength(1);
    expect(body).toContain(`"${syncLag[0]}","Arn"`);
  });

  it('graphs volumes initializing per AZ, initialization seconds and cold handoffs on the dashboard', () => {
    const [dashboard] = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard?.Properties.DashboardBody);
    for (const metric of [
      'VolumesInitializing',
      'InitializationSeconds',
      'InitializationHeldSeconds',
      'ColdHandoffs',
    ])
      expect(body).toContain(`\\"${metric}\\"`);
    expect(body).toContain('\\"Az\\",\\"eu-west-1a\\"');
  });

  it('lets CloudWatch use the alarm topic key', () => {
    template.hasResourceProperties('AWS::KMS::Key', {
      EnableKeyRotation: true,
      KeyPolicy: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
          }),
        ]),
      },
    });
  });

  it('counts its alarms', () => {
    // IdleBelowTarget (1 AZ), AcquireFailed, UncoveredAzLaunches, PushPartial, and the three added above.
    expect(monitoring.alarms).toHaveLength(7);
  });
});

// A new alarm evaluates the periods before its creation; with missing data as breaching these two fired
// at every first deploy, before replenish's first report and before the worker group's first metric.
describe('alarms quiet at a first deploy', () => {
  const topic = [{ Ref: Match.stringLikeRegexp('AlarmTopic') }];

  it('treats missing idle-volume data as missing, not as breaching', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'IdleVolumes',
      TreatMissingData: 'missing',
    });
  });

  it('notifies when replenish stops reporting idle volumes (INSUFFICIENT_DATA)', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'IdleVolumes',
      InsufficientDataActions: topic,
    });
  });

  it('treats missing sync-worker data as missing, not as breaching', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'GroupInServiceInstances',
      Dimensions: [{ Name: 'AutoScalingGroupName', Value: 'worker-a' }],
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
      EvaluationPeriods: 3,
      TreatMissingData: 'missing',
    });
  });

  it("notifies when the worker group's metric stops arriving (INSUFFICIENT_DATA)", () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'GroupInServiceInstances',
      InsufficientDataActions: topic,
    });
  });

  it('keeps event counts, silent when nothing happens, off INSUFFICIENT_DATA notices', () => {
    for (const metric of ['AcquireFailed', 'UncoveredAzLaunches', 'PushPartial']) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        MetricName: metric,
        TreatMissingData: 'notBreaching',
        InsufficientDataActions: Match.absent(),
      });
    }
  });
});

describe('idle volumes below target under adaptive sizing', () => {
  function idleAlarms(props: { idlePerAz: number; adaptiveMaxPerAz?: number }) {
    const stack = new Stack(testApp(), 'Adaptive');
    new Monitoring(stack, 'Monitoring', { poolName: 'web', availabilityZones: ['eu-west-1a'], ...props });
    return Object.values(
      Template.fromStack(stack).findResources('AWS::CloudWatch::Alarm', {
        Properties: { AlarmDescription: Match.stringLikeRegexp('idle volumes in eu-west-1a below') },
      }),
    ).map((a) => a.Properties as Record<string, unknown>);
  }

  it('compare the idle count with the IdleTarget replenish reports, not the starting idlePerAz', () => {
    const [alarm, ...more] = idleAlarms({ idlePerAz: 2, adaptiveMaxPerAz: 30 });

    expect(more).toEqual([]);
    expect(alarm).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    type Query = {
      Id: string;
      Expression?: string;
      MetricStat?: { Metric: { MetricName: string; Dimensions: unknown[] } };
    };
    const metrics = alarm?.Metrics as Query[];
    expect(metrics.find((m) => m.Expression)?.Expression).toBe('target - idle');
    const named = Object.fromEntries(
      metrics.flatMap((m) => (m.MetricStat ? [[m.Id, m.MetricStat.Metric.MetricName]] : [])),
    );
    expect(named).toEqual({ idle: 'IdleVolumes', target: 'IdleTarget' });
    for (const m of metrics.flatMap((x) => (x.MetricStat ? [x.MetricStat] : []))) {
      expect(m.Metric.Dimensions).toEqual([
        { Name: 'Az', Value: 'eu-west-1a' },
        { Name: 'Pool', Value: 'web' },
      ]);
    }
  });

  it('alarm even when the pool starts at 0 idle, since the target may grow', () => {
    expect(idleAlarms({ idlePerAz: 0, adaptiveMaxPerAz: 10 })).toHaveLength(1);
    expect(idleAlarms({ idlePerAz: 0 })).toHaveLength(0);
  });

  it('keep the fixed threshold without adaptive sizing', () => {
    expect(idleAlarms({ idlePerAz: 3 })).toEqual([
      expect.objectContaining({
        MetricName: 'IdleVolumes',
        Threshold: 3,
        ComparisonOperator: 'LessThanThreshold',
      }),
    ]);
  });
});
