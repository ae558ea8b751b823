// Three levels (DESIGN.md): unit (Pulumi mocks), render (pure functions), integration (real services).
const project = (name) => ({
  displayName: name,
  testEnvironment: "node",
  transform: { "^.+\\.ts$": "ts-jest" },
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
});
module.exports = {
  projects: [project("unit"), project("render"), project("integration")],
  testTimeout: 600000,
};
