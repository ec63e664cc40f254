package main

import (
	"slices"

	"github.com/spf13/cobra"
)

// shells are the shells keyward completion writes a script for.
var shells = []string{"bash", "zsh", "fish", "powershell"}

// shellArg is completion's rule: one of shells, never printed back.
func shellArg(c *cobra.Command, args []string) error {
	const what = "the shell: bash, zsh, fish or powershell"
	if err := takes(1, what, "such as: source <(keyward completion bash)")(c, args); err != nil {
		return err
	}
	if !slices.Contains(shells, args[0]) {
		return errorf(exitUsage, "completion takes one argument, %s (the argument is %s)", what, notRepeated)
	}
	return nil
}

// completionCommand is keyward's own completion command, in place of
// cobra's default (which answers an unknown shell by quoting it back). The
// scripts are cobra's; they ask keyward __complete for the candidates.
func (a *app) completionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish|powershell",
		Short: "Print the shell completion script for bash, zsh, fish or powershell",
		Long: `Print a script that makes the shell complete keyward's commands and flags.

bash (needs the bash-completion package):
    source <(keyward completion bash)           # this shell
    keyward completion bash > /etc/bash_completion.d/keyward
zsh (with compinit run in ~/.zshrc):
    keyward completion zsh > "${fpath[1]}/_keyward"
fish:
    keyward completion fish > ~/.config/fish/completions/keyward.fish
powershell:
    keyward completion powershell | Out-String | Invoke-Expression

A new shell picks up a script installed in those places.`,
		ValidArgs: shells,
		Args:      shellArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.stdout, true)
			case "zsh":
				return root.GenZshCompletion(a.stdout)
			case "fish":
				return root.GenFishCompletion(a.stdout, true)
			default:
				return root.GenPowerShellCompletionWithDesc(a.stdout)
			}
		},
	}
}
