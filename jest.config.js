// Four levels: unit (Pulumi mocks), render (pure functions), integration (real services) and
// lifecycle (the real Pulumi engine deploying, changing and destroying sites on sandboxed hosts).
const project = (name) => ({
  displayName: name,
  testEnvironment: "node",
  transform: { "^.+\\.ts$": "ts-jest" },
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  setupFiles: ["<rootDir>/test/pin-clock.ts"],
});
module.exports = {
  projects: [project("unit"), project("render"), project("integration"), project("lifecycle")],
  testTimeout: 600000,
};
