import { VolsdError } from '../shared/errors.js';

/** The caller a function URL with `AuthType: AWS_IAM` reports (`requestContext.authorizer.iam`). */
export interface IamCaller {
  accessKey?: string | null;
  accountId?: string | null;
  callerId?: string | null;
  userArn?: string | null;
  userId?: string | null;
}

/** The caller is not an EC2 instance's own role session, or not of this account: refused (403). */
export class NotAnInstanceSession extends VolsdError {
  override name = 'NotAnInstanceSession';
}

const instanceId = 'i-(?:[0-9a-f]{8}|[0-9a-f]{17})';
/** `<role id>:<instance id>`: a role's unique id is `AROA` and 16 or more upper-case letters and digits. */
const userIdPattern = new RegExp(`^AROA[A-Z0-9]{12,124}:(${instanceId})$`);
/** `arn:<partition>:sts::<account>:assumed-role/<role name>/<instance id>`. */
const userArnPattern = new RegExp(
  String.raw`^arn:aws[a-z-]*:sts::(\d{12}):assumed-role/[\w+=,.@-]{1,64}/(${instanceId})$`,
);

/**
 * The EC2 instance a host API request comes from, proven by the credentials that signed it, never by
 * the request's body. For a role an EC2 instance assumed through its instance profile, IAM sets the
 * session name to the instance id: `aws:userid` is `<role-id>:<ec2-instance-id>` (IAM User Guide, "IAM
 * policy elements: Variables and tags", principal table) and the session ARN is
 * `arn:aws:sts::<account>:assumed-role/<role>/<instance-id>`. A function URL with `AWS_IAM` hands both to
 * the function as `requestContext.authorizer.iam.userId` and `.userArn` (AWS Lambda Developer Guide,
 * "Invoking Lambda function URLs", request payload). Both must name the same instance, and the account
 * must be the pool's.
 * Not a proof by itself: a principal allowed to assume the same role could pick an instance id as its
 * session name. The host role must trust `ec2.amazonaws.com` only (docs/decisions.md, "Host identity").
 */
export function instanceOfCaller(caller: IamCaller | undefined, expectedAccountId: string): string {
  const refuse = (why: string) => new NotAnInstanceSession(`not an EC2 instance's role session: ${why}`);
  if (!caller) throw refuse('no IAM caller (the function URL must use AuthType AWS_IAM)');
  const fromId = userIdPattern.exec(caller.userId ?? '')?.[1];
  if (!fromId) throw refuse('its user id is not <role id>:<instance id>');
  const arn = userArnPattern.exec(caller.userArn ?? '');
  if (!arn) throw refuse('its ARN is not an assumed-role session named after an instance');
  if (arn[2] !== fromId) throw refuse('its user id and its ARN name different sessions');
  if (arn[1] !== expectedAccountId || (caller.accountId && caller.accountId !== expectedAccountId)) {
    throw refuse('another account');
  }
  return fromId;
}
