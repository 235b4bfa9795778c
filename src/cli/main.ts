import { CodedError } from '../coded-error.js';
import { type CliCommand, UsageError } from './args.js';
import { finetuneCommand } from './finetune-command.js';
import { generateCommand } from './generate-command.js';
import { modelCommands } from './model-commands.js';
import { enginesNode, nodeTooOld } from './node-version.js';
import { chatCommand, startCommand } from './serve-commands.js';
import { serveModelCommand } from './serve-model-command.js';
import { workerCommand } from './worker-command.js';

const commands: readonly CliCommand[] = [startCommand, chatCommand, serveModelCommand, workerCommand, ...modelCommands, generateCommand, finetuneCommand];

function help(): string {
  const lines = commands.map((command) => `  ${command.usage}\n      ${command.summary}`);
  return `tunebot: a self-hosted FAQ chat bot on GPT-2 and ONNX Runtime\n\nCommands:\n${lines.join('\n')}\n`;
}

function findCommand(argv: readonly string[]): { command: CliCommand; rest: readonly string[] } | null {
  for (const command of commands) {
    if (command.words.every((word, i) => argv[i] === word)) return { command, rest: argv.slice(command.words.length) };
  }
  return null;
}

export async function main(argv: readonly string[]): Promise<number> {
  const tooOld = nodeTooOld(process.version, enginesNode());
  if (tooOld) {
    process.stderr.write(`error ${tooOld.code}: ${tooOld.message}\n`);
    return 1;
  }
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(help());
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    process.stderr.write(`unknown command "${argv.join(' ')}"\n\n${help()}`);
    return 2;
  }
  try {
    await found.command.run(found.rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${error.message}\nusage: ${found.command.usage}\n`);
      return 2;
    }
    // A coded error's message says what went wrong and what to do: one line, after its code.
    if (error instanceof CodedError) {
      process.stderr.write(`error ${error.code}: ${error.message.replace(/\s*\n\s*/gu, '; ')}\n`);
      return 1;
    }
    // Anything else is a bug in tunebot, not a setting to fix: the trace is for its report.
    process.stderr.write(`tunebot: internal error (a bug in tunebot; please report it with this trace):\n${error instanceof Error ? error.stack : String(error)}\n`);
    return 70;
  }
}

process.exitCode = await main(process.argv.slice(2));
