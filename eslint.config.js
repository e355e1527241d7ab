// ESLint: the recommended JavaScript and typescript-eslint rules, plus the layering rule of lib/.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

// lib/ sits under the story the top-level files tell: it never imports server.ts, session.ts,
// agent.ts or client.ts, not even a type (it declares the small interfaces it needs, which they
// satisfy; the turn's vocabulary is lib/agent/).
const topLevel = (depth) => {
  const up = "../".repeat(depth);
  return {
    patterns: [
      {
        group: [`${up}server.ts`, `${up}session.ts`, `${up}agent.ts`, `${up}client.ts`],
        message: "lib/ must not import the top level",
      },
    ],
  };
};

const nodeOnly = Object.fromEntries(Object.keys(globals.node).map((name) => [name, "off"]));

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
  // The page's modules run in the browser: its globals, and none of Node's.
  { files: ["page/**/*.js"], languageOptions: { globals: { ...nodeOnly, ...globals.browser } } },
  { files: ["lib/*.ts"], rules: { "no-restricted-imports": ["error", topLevel(1)], "@typescript-eslint/no-restricted-imports": "off" } },
  { files: ["lib/*/*.ts"], rules: { "no-restricted-imports": ["error", topLevel(2)] } },
  { files: ["lib/*/*/*.ts"], rules: { "no-restricted-imports": ["error", topLevel(3)] } },
);
