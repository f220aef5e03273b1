import { fileURLToPath } from 'node:url';
import { Stack } from 'aws-cdk-lib';
import { CfnDocument } from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import {
  allDocuments,
  type DocumentName,
  documentContent,
  readScript,
  type VolsdDocument,
} from '../lambdas/shared/documents.js';

const projectRoot = fileURLToPath(new URL('..', import.meta.url));

/** SSM's limit on the content of a Command document, in bytes. */
export const maxDocumentBytes = 64 * 1024;

/** The deployed name of a Volsd document in a pool: `<name>-<pool>`, e.g. `Volsd-Mount-web`. */
export function deployedDocumentName(name: DocumentName, poolName: string): string {
  return `${name}-${poolName}`;
}

/** Props of {@link SsmDocuments}. */
export interface SsmDocumentsProps {
  /** The pool's name: each document is deployed as `<name>-<pool>`. */
  readonly poolName: string;
  /**
   * The documents to deploy.
   * @default every document of the catalogue (`lambdas/shared/documents.ts`)
   */
  readonly documents?: readonly VolsdDocument[];
  /**
   * Directory the scripts are read from.
   * @default the repository root
   */
  readonly projectRoot?: string;
}

/**
 * The pool's SSM Command documents (Volsd-Mount, Volsd-Unmount, Volsd-Format, Volsd-Sync,
 * Volsd-Freeze), one `AWS::SSM::Document` each, built by the catalogue's `documentContent()` around
 * the repository's script (library inlined by `readScript()`), so the deployed documents are exactly
 * the shellchecked scripts the sandbox runs. Named `<name>-<pool>` so pools in one account and
 * Region do not collide; updates create a new document version in place.
 */
export class SsmDocuments extends Construct {
  /** The CloudFormation documents, by catalogue name. */
  public readonly documents: ReadonlyMap<DocumentName, CfnDocument>;
  /** Deployed document names, by catalogue name (what SendCommand's DocumentName takes). */
  public readonly documentNames: ReadonlyMap<DocumentName, string>;

  constructor(scope: Construct, id: string, props: SsmDocumentsProps) {
    super(scope, id);
    const root = props.projectRoot ?? projectRoot;
    const documents = new Map<DocumentName, CfnDocument>();
    const names = new Map<DocumentName, string>();
    for (const doc of props.documents ?? allDocuments) {
      if (names.has(doc.name)) throw new Error(`SsmDocuments: document ${doc.name} is listed twice`);
      const content = documentContent(doc, readScript(doc, root));
      const bytes = Buffer.byteLength(JSON.stringify(content));
      if (bytes > maxDocumentBytes) {
        throw new Error(`SsmDocuments: ${doc.name} is ${bytes} bytes, over SSM's ${maxDocumentBytes}`);
      }
      const name = deployedDocumentName(doc.name, props.poolName);
      documents.set(
        doc.name,
        new CfnDocument(this, doc.name, {
          name,
          documentType: 'Command',
          documentFormat: 'JSON',
          content,
          // A changed script becomes a new version of the same named document (Replace would need a
          // new name). Commands name $LATEST (lambdas/shared/commands.ts): CloudFormation is documented
          // to make the new version the default, but reported not to (docs/decisions.md).
          updateMethod: 'NewVersion',
          targetType: '/AWS::EC2::Instance',
        }),
      );
      names.set(doc.name, name);
    }
    this.documents = documents;
    this.documentNames = names;
  }

  /** The deployed name of `name`; throws if the pool does not deploy it. */
  public nameOf(name: DocumentName): string {
    const deployed = this.documentNames.get(name);
    if (!deployed) throw new Error(`SsmDocuments: ${name} is not deployed in this pool`);
    return deployed;
  }

  /** ARNs of the deployed documents (for SendCommand permissions). */
  public get documentArns(): string[] {
    const stack = Stack.of(this);
    return [...this.documentNames.values()].map((name) =>
      stack.formatArn({ service: 'ssm', resource: 'document', resourceName: name }),
    );
  }
}
