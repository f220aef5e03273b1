import { Stack } from 'aws-cdk-lib';
import { ParameterTier, StringParameter } from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { configParameterNames, configParameterPath } from '../lambdas/shared/config-names.js';

export { configParameterNames, configParameterPath };

const parameterNamePattern = /^[A-Za-z0-9_.-]{1,128}$/;

/** Props of {@link ConfigParameters}. */
export interface ConfigParametersProps {
  /** The pool's name: parameters live under `/volsd/<poolName>/`. */
  readonly poolName: string;
}

/**
 * The pool's published configuration: String parameters under `/volsd/<pool>/` (table name, push
 * bucket, and later the workflow ARNs), so volsd-client needs only the pool name to find everything.
 */
export class ConfigParameters extends Construct {
  /** `/volsd/<pool>`. */
  public readonly path: string;
  /** ARN pattern of every parameter of the pool, for read grants: `arn:...:parameter/volsd/<pool>/*`. */
  public readonly parametersArn: string;
  /** ARN of the path itself (`arn:...:parameter/volsd/<pool>`), which GetParametersByPath is authorized on. */
  public readonly pathArn: string;
  private readonly parameters = new Map<string, StringParameter>();

  constructor(scope: Construct, id: string, props: ConfigParametersProps) {
    super(scope, id);
    this.path = configParameterPath(props.poolName);
    const stack = Stack.of(this);
    this.pathArn = stack.formatArn({
      service: 'ssm',
      resource: 'parameter',
      resourceName: this.path.slice(1),
    });
    this.parametersArn = stack.formatArn({
      service: 'ssm',
      resource: 'parameter',
      resourceName: `${this.path.slice(1)}/*`,
    });
  }

  /**
   * Publishes `value` as `/volsd/<pool>/<name>` and returns the parameter. Names are one path segment
   * of [A-Za-z0-9_.-]; adding a name twice throws.
   */
  public add(name: string, value: string, description?: string): StringParameter {
    if (!parameterNamePattern.test(name)) {
      throw new Error(`ConfigParameters: parameter name "${name}" must be 1-128 of [A-Za-z0-9_.-]`);
    }
    if (this.parameters.has(name)) {
      throw new Error(`ConfigParameters: parameter "${name}" is already published`);
    }
    const parameter = new StringParameter(this, name, {
      parameterName: `${this.path}/${name}`,
      stringValue: value,
      description: description ?? `Volsd: ${name}`,
      tier: ParameterTier.STANDARD,
    });
    this.parameters.set(name, parameter);
    return parameter;
  }

  /** The parameter published under `name`, if any. */
  public get(name: string): StringParameter | undefined {
    return this.parameters.get(name);
  }
}
