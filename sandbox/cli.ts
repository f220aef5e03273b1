/**
 * `npm run sandbox`: the local cloud's command line. Until the scenarios land it says what exists.
 */
console.log('Volsd sandbox: the local cloud (dynalite, s3rver, the EC2/ASG/SSM simulator) is being built.');
console.log('Run `npm test` for the repository and simulator tests.');
