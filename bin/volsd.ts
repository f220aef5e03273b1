#!/usr/bin/env node
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readAppConfig } from '../lib/config.js';
import { VolsdStack } from '../lib/volsd-stack.js';

// Configuration comes from cdk.json context (documented in lib/config.ts); no logic here.
const app = new App();
const { stackName, stackProps } = readAppConfig(app.node);
new VolsdStack(app, stackName, stackProps);
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
