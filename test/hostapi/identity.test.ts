import { describe, expect, it } from 'vitest';
import { instanceOfCaller, NotAnInstanceSession } from '../../lambdas/hostapi/identity.js';

const account = '123456789012';
const instance = 'i-0123456789abcdef0';
const session = {
  accessKey: 'ASIAEXAMPLEKEY000001',
  accountId: account,
  callerId: `AROA3XFRBF535PLBIFPI4:${instance}`,
  userArn: `arn:aws:sts::${account}:assumed-role/web-host/${instance}`,
  userId: `AROA3XFRBF535PLBIFPI4:${instance}`,
};

describe('the instance a host API caller is', () => {
  it('is the instance an EC2 role session is named after, from its user id and ARN', () => {
    expect(instanceOfCaller(session, account)).toBe(instance);
  });

  it.each([
    ['no IAM caller (a URL without AWS_IAM)', undefined],
    [
      'an IAM user',
      { ...session, userId: 'AIDAJ45Q7YFFAREXAMPLE', userArn: `arn:aws:iam::${account}:user/alice` },
    ],
    [
      'a role session named otherwise',
      {
        ...session,
        userId: 'AROA3XFRBF535PLBIFPI4:alice',
        userArn: `arn:aws:sts::${account}:assumed-role/web-host/alice`,
      },
    ],
    [
      'a user id and an ARN naming different instances',
      { ...session, userArn: `arn:aws:sts::${account}:assumed-role/web-host/i-0fedcba9876543210` },
    ],
    [
      'another account',
      {
        ...session,
        accountId: '210987654321',
        userArn: `arn:aws:sts::210987654321:assumed-role/web-host/${instance}`,
      },
    ],
    ['a session name with a suffix', { ...session, userId: `AROA3XFRBF535PLBIFPI4:${instance}x` }],
  ])('refuses %s', (_label, caller) => {
    expect(() => instanceOfCaller(caller, account)).toThrow(NotAnInstanceSession);
  });
});
