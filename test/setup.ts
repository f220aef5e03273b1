// aws-local-stepfunctions 3 targets Node 22; Node 20 lacks Promise.withResolvers.
import '../sandbox/polyfills.js';

// Node 20 runs the tests and the sandbox here; the Lambdas run on Node 22. The SDK's notice about it is noise.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
