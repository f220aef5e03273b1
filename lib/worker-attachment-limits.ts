/**
 * MaximumEbsAttachments (root volume included) of every arm64 instance type, as DescribeInstanceTypes
 * reports it: generated from moto's dump of real DescribeInstanceTypes data
 * (`moto/ec2/resources/instance_types.json.gz`, moto 5.2.1). Synth cannot call EC2, so the
 * pool settings size the sync worker groups from this table; at run time replenish asks
 * DescribeInstanceTypes itself.
 */
const byLimit: Record<number, string> = {
  23: 'i4g.16xlarge im4gn.16xlarge is4gen.8xlarge',
  25:
    'c6gd.12xlarge c6gd.16xlarge c7gd.12xlarge c7gd.16xlarge g5g.16xlarge i4g.8xlarge im4gn.8xlarge ' +
    'is4gen.4xlarge m6gd.12xlarge m6gd.16xlarge m7gd.12xlarge m7gd.16xlarge r6gd.12xlarge ' +
    'r6gd.16xlarge r7gd.12xlarge r7gd.16xlarge x2gd.12xlarge x2gd.16xlarge',
  26:
    'c6gd.2xlarge c6gd.4xlarge c6gd.8xlarge c6gd.large c6gd.medium c6gd.xlarge c7gd.2xlarge ' +
    'c7gd.4xlarge c7gd.8xlarge c7gd.large c7gd.medium c7gd.xlarge g5g.2xlarge g5g.4xlarge g5g.8xlarge ' +
    'g5g.xlarge i4g.2xlarge i4g.4xlarge i4g.large i4g.xlarge im4gn.2xlarge im4gn.4xlarge im4gn.large ' +
    'im4gn.xlarge is4gen.2xlarge is4gen.large is4gen.medium is4gen.xlarge m6gd.2xlarge m6gd.4xlarge ' +
    'm6gd.8xlarge m6gd.large m6gd.medium m6gd.xlarge m7gd.2xlarge m7gd.4xlarge m7gd.8xlarge ' +
    'm7gd.large m7gd.medium m7gd.xlarge r6gd.2xlarge r6gd.4xlarge r6gd.8xlarge r6gd.large r6gd.medium ' +
    'r6gd.xlarge r7gd.2xlarge r7gd.4xlarge r7gd.8xlarge r7gd.large r7gd.medium r7gd.xlarge ' +
    'x2gd.2xlarge x2gd.4xlarge x2gd.8xlarge x2gd.large x2gd.medium x2gd.xlarge',
  27:
    'a1.2xlarge a1.4xlarge a1.large a1.medium a1.xlarge c6g.12xlarge c6g.16xlarge c6g.2xlarge ' +
    'c6g.4xlarge c6g.8xlarge c6g.large c6g.medium c6g.xlarge c6gn.12xlarge c6gn.16xlarge c6gn.2xlarge ' +
    'c6gn.4xlarge c6gn.8xlarge c6gn.large c6gn.medium c6gn.xlarge c7g.12xlarge c7g.16xlarge ' +
    'c7g.2xlarge c7g.4xlarge c7g.8xlarge c7g.large c7g.medium c7g.xlarge c7gn.12xlarge c7gn.16xlarge ' +
    'c7gn.2xlarge c7gn.4xlarge c7gn.8xlarge c7gn.large c7gn.medium c7gn.xlarge hpc7g.16xlarge ' +
    'hpc7g.4xlarge hpc7g.8xlarge m6g.12xlarge m6g.16xlarge m6g.2xlarge m6g.4xlarge m6g.8xlarge ' +
    'm6g.large m6g.medium m6g.xlarge m7g.12xlarge m7g.16xlarge m7g.2xlarge m7g.4xlarge m7g.8xlarge ' +
    'm7g.large m7g.medium m7g.xlarge r6g.12xlarge r6g.16xlarge r6g.2xlarge r6g.4xlarge r6g.8xlarge ' +
    'r6g.large r6g.medium r6g.xlarge r7g.12xlarge r7g.16xlarge r7g.2xlarge r7g.4xlarge r7g.8xlarge ' +
    'r7g.large r7g.medium r7g.xlarge t4g.2xlarge t4g.large t4g.medium t4g.micro t4g.nano t4g.small ' +
    't4g.xlarge',
  31:
    'a1.metal c6g.metal c6gd.metal c7g.metal c7gd.metal c7gn.metal g5g.metal m6g.metal m6gd.metal ' +
    'm7g.metal m7gd.metal r6g.metal r6gd.metal r7g.metal r7gd.metal x2gd.metal',
  32:
    'c8g.12xlarge c8g.2xlarge c8g.4xlarge c8g.8xlarge c8g.large c8g.medium c8g.xlarge c8gb.12xlarge ' +
    'c8gb.2xlarge c8gb.4xlarge c8gb.8xlarge c8gb.large c8gb.medium c8gb.xlarge c8gd.12xlarge ' +
    'c8gd.2xlarge c8gd.4xlarge c8gd.8xlarge c8gd.large c8gd.medium c8gd.xlarge c8gn.12xlarge ' +
    'c8gn.2xlarge c8gn.4xlarge c8gn.8xlarge c8gn.large c8gn.medium c8gn.xlarge i8g.12xlarge ' +
    'i8g.2xlarge i8g.4xlarge i8g.8xlarge i8g.large i8g.xlarge i8ge.12xlarge i8ge.2xlarge i8ge.3xlarge ' +
    'i8ge.6xlarge i8ge.large i8ge.xlarge m8g.12xlarge m8g.2xlarge m8g.4xlarge m8g.8xlarge m8g.large ' +
    'm8g.medium m8g.xlarge m8gb.12xlarge m8gb.2xlarge m8gb.4xlarge m8gb.8xlarge m8gb.large ' +
    'm8gb.medium m8gb.xlarge m8gd.12xlarge m8gd.2xlarge m8gd.4xlarge m8gd.8xlarge m8gd.large ' +
    'm8gd.medium m8gd.xlarge m8gn.12xlarge m8gn.2xlarge m8gn.4xlarge m8gn.8xlarge m8gn.large ' +
    'm8gn.medium m8gn.xlarge r8g.12xlarge r8g.2xlarge r8g.4xlarge r8g.8xlarge r8g.large r8g.medium ' +
    'r8g.xlarge r8gb.12xlarge r8gb.2xlarge r8gb.4xlarge r8gb.8xlarge r8gb.large r8gb.medium ' +
    'r8gb.xlarge r8gd.12xlarge r8gd.2xlarge r8gd.4xlarge r8gd.8xlarge r8gd.large r8gd.medium ' +
    'r8gd.xlarge r8gn.12xlarge r8gn.2xlarge r8gn.4xlarge r8gn.8xlarge r8gn.large r8gn.medium ' +
    'r8gn.xlarge x8g.12xlarge x8g.2xlarge x8g.4xlarge x8g.8xlarge x8g.large x8g.medium x8g.xlarge',
  39:
    'c8g.metal-24xl c8gb.metal-24xl c8gd.metal-24xl c8gn.metal-24xl i8g.metal-24xl i8ge.metal-24xl ' +
    'm8g.metal-24xl m8gb.metal-24xl m8gd.metal-24xl m8gn.metal-24xl r8g.metal-24xl r8gb.metal-24xl ' +
    'r8gd.metal-24xl r8gn.metal-24xl x8g.metal-24xl',
  48:
    'c8g.16xlarge c8gb.16xlarge c8gd.16xlarge c8gn.16xlarge i8g.16xlarge i8ge.18xlarge m8g.16xlarge ' +
    'm8gb.16xlarge m8gd.16xlarge m8gn.16xlarge r8g.16xlarge r8gb.16xlarge r8gd.16xlarge r8gn.16xlarge ' +
    'x8g.16xlarge',
  64:
    'c8g.24xlarge c8gb.24xlarge c8gd.24xlarge c8gn.24xlarge i8g.24xlarge i8ge.24xlarge m8g.24xlarge ' +
    'm8gb.24xlarge m8gd.24xlarge m8gn.24xlarge r8g.24xlarge r8gb.24xlarge r8gd.24xlarge r8gn.24xlarge ' +
    'x8g.24xlarge',
  78: 'c8gb.metal-48xl c8gn.metal-48xl m8gb.metal-48xl m8gn.metal-48xl r8gb.metal-48xl r8gn.metal-48xl',
  79:
    'c8g.metal-48xl c8gd.metal-48xl i8g.metal-48xl i8ge.metal-48xl m8g.metal-48xl m8gd.metal-48xl ' +
    'r8g.metal-48xl r8gd.metal-48xl x8g.metal-48xl',
  128:
    'c8g.48xlarge c8gb.48xlarge c8gd.48xlarge c8gn.48xlarge i8g.48xlarge i8ge.48xlarge m8g.48xlarge ' +
    'm8gb.48xlarge m8gd.48xlarge m8gn.48xlarge r8g.48xlarge r8gb.48xlarge r8gd.48xlarge r8gn.48xlarge ' +
    'x8g.48xlarge',
};

const limits = new Map<string, number>(
  Object.entries(byLimit).flatMap(([limit, names]) =>
    names.split(' ').map((n) => [n, Number(limit)] as const),
  ),
);

/** The instance type's EBS attachment limit (root included), or undefined for a type not in the table. */
export function ebsAttachmentLimit(instanceType: string): number | undefined {
  return limits.get(instanceType);
}
