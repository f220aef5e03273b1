import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

/**
 * SDK clients, created once per module (one per Lambda container). Endpoints come from the SDK's own
 * configuration (`AWS_ENDPOINT_URL_<SERVICE>` environment variables), which is how the sandbox points
 * DynamoDB at its local server; the sandbox answers EC2, Auto Scaling, SSM and Step Functions by
 * adding a middleware to these same instances. Handler code never knows.
 *
 * EC2 calls use the adaptive retry mode: it backs off on `RequestLimitExceeded` with a client-side
 * rate limiter, which is what AWS recommends against the per-action token buckets.
 */
export const ec2 = new EC2Client({ retryMode: 'adaptive', maxAttempts: 8 });
export const autoScaling = new AutoScalingClient({ maxAttempts: 5 });
export const ssm = new SSMClient({ maxAttempts: 5 });
export const sfn = new SFNClient({ maxAttempts: 5 });
/** The fan-out's listing of the push bucket (its space check). */
export const s3 = new S3Client({ maxAttempts: 5 });
export const dynamo = new DynamoDBClient({ maxAttempts: 5 });
export const dynamoDoc = DynamoDBDocumentClient.from(dynamo, {
  marshallOptions: { removeUndefinedValues: true },
});
