import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { tracer } from './logger.js';

/**
 * SDK clients, created once per module (one per Lambda container). Endpoints come from the SDK's own
 * configuration (`AWS_ENDPOINT_URL_<SERVICE>` environment variables), which is how the sandbox points
 * DynamoDB at its local server; the sandbox answers EC2, Auto Scaling, SSM and Step Functions by
 * adding a middleware to these same instances. Handler code never knows.
 *
 * EC2 calls use the adaptive retry mode: it backs off on `RequestLimitExceeded` with a client-side
 * rate limiter, which is what AWS recommends against the per-action token buckets.
 *
 * Each client is captured by the Powertools tracer: in Lambda (active tracing) every AWS call is an X-Ray
 * subsegment of the invocation, so a slow acquire shows which call it waited on. Outside Lambda (tests,
 * the sandbox) the tracer is off and the clients are returned unchanged.
 */
export const ec2 = tracer.captureAWSv3Client(new EC2Client({ retryMode: 'adaptive', maxAttempts: 8 }));
export const autoScaling = tracer.captureAWSv3Client(new AutoScalingClient({ maxAttempts: 5 }));
export const ssm = tracer.captureAWSv3Client(new SSMClient({ maxAttempts: 5 }));
export const sfn = tracer.captureAWSv3Client(new SFNClient({ maxAttempts: 5 }));
/** The fan-out's listing of the push bucket (its space check). */
export const s3 = tracer.captureAWSv3Client(new S3Client({ maxAttempts: 5 }));
export const dynamo = tracer.captureAWSv3Client(new DynamoDBClient({ maxAttempts: 5 }));
export const dynamoDoc = DynamoDBDocumentClient.from(dynamo, {
  marshallOptions: { removeUndefinedValues: true },
});
