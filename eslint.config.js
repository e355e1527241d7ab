// ESLint: the recommended JavaScript and typescript-eslint rules, plus the layering rule of lib/.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

// lib/ never imports the top level (server.ts, session.ts, agent.ts, client.ts), except types of
// the interfaces it implements: the modules sit under the story the top-level files tell.
const topLevel = (depth) => ({
  patterns: [
    { group: [`${"../".repeat(depth)}*.ts`], allowTypeImports: true, message: "lib/ must not import the top level (type imports only)" },
  ],
});

export default tseslint.config(
  { ignores: ["node_modules/", "logs/", "data/", "workspace/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
    },
  },
  { files: ["lib/*.ts"], rules: { "no-restricted-imports": ["error", topLevel(1)], "@typescript-eslint/no-restricted-imports": "off" } },
  { files: ["lib/*/*.ts"], rules: { "no-restricted-imports": ["error", topLevel(2)] } },
  { files: ["lib/*/*/*.ts"], rules: { "no-restricted-imports": ["error", topLevel(3)] } },
);
