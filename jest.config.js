// Three levels (DESIGN.md): unit (Pulumi mocks), render (pure functions), integration (real services).
const project = (name, testTimeout) => ({
  displayName: name,
  testEnvironment: "node",
  transform: { "^.+\\.ts$": ["ts-jest", { isolatedModules: true }] },
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  testTimeout,
});
module.exports = {
  projects: [project("unit", 60000), project("render", 30000), project("integration", 600000)],
};
