// The Pulumi program the CLI runs (Pulumi.yaml main): the stack outputs of backupProgram().
import { backupProgram } from "./program";

const outputs = backupProgram();

export const summary = outputs.summary;
export const pbsEncryptionKeys = outputs.pbsEncryptionKeys;
export const pbsFingerprint = outputs.pbsFingerprint;
export const threeTwoOne = outputs.threeTwoOne;
export const recovery = outputs.recovery;
