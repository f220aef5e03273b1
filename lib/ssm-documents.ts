import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Stack } from 'aws-cdk-lib';
import { CfnDocument } from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));

/** A parameter of a Volsd SSM document (the shape of the catalogue in `lambdas/shared/documents.ts`). */
export interface DocumentParameterDefinition {
  readonly name: string;
  readonly allowedPattern?: string;
  readonly [key: string]: unknown;
}

/** One Volsd SSM document: its logical name, the script it runs, its parameters. */
export interface DocumentDefinition {
  /** Logical name, e.g. `Volsd-Mount`. */
  readonly name: string;
  /** Path of the shell script, relative to the project root (e.g. `scripts/mount.sh`). */
  readonly scriptPath: string;
  readonly parameters: readonly DocumentParameterDefinition[];
}

/** Props of {@link SsmDocuments}. */
export interface SsmDocumentsProps<D extends DocumentDefinition = DocumentDefinition> {
  /** The pool's name: each document is deployed as `<name>-<pool>`. */
  readonly poolName: string;
  /** The documents to deploy. */
  readonly documents: readonly D[];
  /** Builds the SSM document content (schema 2.2) of `doc` around its script text. */
  readonly content: (doc: D, scriptText: string) => unknown;
  /**
   * Directory script paths are relative to.
   * @default the repository root
   */
  readonly projectRoot?: string;
}

/**
 * The pool's SSM Command documents (Volsd-Mount, Volsd-Unmount, Volsd-Sync, ...), one
 * `AWS::SSM::Document` each, named `<name>-<pool>` so pools do not collide and operators can run
 * them by hand. The scripts are read at synth time from the repository, so the deployed documents
 * are exactly the shellchecked scripts the sandbox runs. Updates create a new document version in place.
 */
export class SsmDocuments<D extends DocumentDefinition = DocumentDefinition> extends Construct {
  /** The CloudFormation documents, by logical name. */
  public readonly documents: ReadonlyMap<string, CfnDocument>;
  /** Deployed document names, by logical name. */
  public readonly documentNames: ReadonlyMap<string, string>;

  constructor(scope: Construct, id: string, props: SsmDocumentsProps<D>) {
    super(scope, id);
    const root = props.projectRoot ?? projectRoot;
    const documents = new Map<string, CfnDocument>();
    const names = new Map<string, string>();
    for (const doc of props.documents) {
      if (names.has(doc.name)) throw new Error(`SsmDocuments: document ${doc.name} is defined twice`);
      const scriptFile = isAbsolute(doc.scriptPath) ? doc.scriptPath : join(root, doc.scriptPath);
      let scriptText: string;
      try {
        scriptText = readFileSync(scriptFile, 'utf8');
      } catch (cause) {
        throw new Error(`SsmDocuments: cannot read the script of ${doc.name} at ${scriptFile}`, { cause });
      }
      const name = `${doc.name}-${props.poolName}`;
      documents.set(
        doc.name,
        new CfnDocument(this, doc.name, {
          name,
          documentType: 'Command',
          documentFormat: 'JSON',
          content: props.content(doc, scriptText),
          updateMethod: 'NewVersion',
          targetType: '/AWS::EC2::Instance',
        }),
      );
      names.set(doc.name, name);
    }
    this.documents = documents;
    this.documentNames = names;
  }

  /** ARNs of the deployed documents (for SendCommand permissions). */
  public get documentArns(): string[] {
    const stack = Stack.of(this);
    return [...this.documentNames.values()].map((name) =>
      stack.formatArn({ service: 'ssm', resource: 'document', resourceName: name }),
    );
  }
}
