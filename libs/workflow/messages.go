package workflow

// The catalog of what people read: step and status messages, and the lines the processor
// writes to a run's log. They are French, as the brief's examples are; tests and clients
// compare some of them, so they change here or nowhere. Format strings take their
// arguments in the order their comment gives.

// Steps: the message of each step's StepStarted.
const (
	MessageCheckIterations   = "Vérification du nombre d'itérations..."
	MessagePrepareRepository = "Préparation du repository..."
	MessageLoadConversation  = "Chargement de la conversation LLM..."
	MessageCallLLM           = "Génération du code avec le LLM..."
	MessageCommitChanges     = "Commit des modifications..."
	MessageRunCI             = "Exécution des tests..."
	MessageHandleCIResult    = "Traitement du résultat CI..."
	MessageAwaitValidation   = "En attente de validation humaine"
	// MessageRetriedStep: a step's message, attempt number (a step retried after a crash).
	MessageRetriedStep = "%s (reprise, tentative %d)"
)

// Runs: the messages of the run-level transitions.
const (
	MessagePending   = "Traitement en cours de démarrage..."
	MessageCompleted = "CI réussie : en attente de validation humaine"
	MessageFailed    = "Erreur lors du traitement"
	MessageCancelled = "Traitement annulé"
	MessageValidated = "Modifications validées"
	MessageRejected  = "Demande de traitement refusée"
	// MessageStepFailed: step name.
	MessageStepFailed          = "Échec de l'étape %s"
	MessageIterationsExhausted = "Nombre maximal d'itérations atteint"
	MessageCIFailedLast        = "La CI échoue après le nombre maximal d'itérations"
)

// Run log lines of the workflow itself.
const (
	// LogIterationsUsed: iterations used, MAX_ITERATIONS.
	LogIterationsUsed = "Itérations utilisées : %d / %d"
	// LogCIRetry: CI exit code, next iteration, MAX_ITERATIONS.
	LogCIRetry = "CI en échec (code %d) : nouvelle itération %d/%d avec la sortie CI"
)

// Run log lines of the simulated executor.
const (
	LogSimNoRepository = "(aucun repository configuré)"
	// LogSimClone: repository URL (or LogSimNoRepository).
	LogSimClone = "Clonage du repository %s..."
	// LogSimCheckout: base branch.
	LogSimCheckout = "Checkout de la branche %s"
	// LogSimConversation: review comments.
	LogSimConversation = "Conversation chargée : %d commentaire(s) de revue"
	LogSimCallLLM      = "Génération du code (exécuteur simulé, aucun LLM appelé)..."
	// LogSimChange: the change's summary.
	LogSimChange = "Modification appliquée : %s"
	// LogSimCommit: run branch.
	LogSimCommit = "Commit sur la branche %s"
)

// Run log lines of the real executor.
const (
	LogStaleCIStopped  = "CI d'une tentative interrompue encore active : arrêtée"
	LogRepoUnreachable = "Le dépôt est inaccessible (clone refusé ou introuvable)"
	LogPushRefused     = "Le push vers le dépôt a été refusé"
	LogGitTampered     = "Le répertoire .git a été modifié hors de ticketflow : dépôt recloné"
	// LogCloning: repository URL, branch.
	LogCloning = "Clonage de %s (branche %s)..."
	// LogResumeFromBranch: the previous run's branch.
	LogResumeFromBranch = "Reprise depuis la branche %s (modifications demandées)"
	// LogRepositoryReady: ref, short commit, file count.
	LogRepositoryReady = "Repository prêt : %s à %s, %d fichier(s)"
	// LogRepoConfigFile: file name, size in bytes, short sha256, CI command, whose it is
	// (repository or ticket), editable globs ("" for every path).
	LogRepoConfigFile = "Configuration du dépôt lue dans %s (%d octets, sha256 %s) : CI « %s » (%s), chemins modifiables : %s"
	// LogRepoConfigDefault: file name.
	LogRepoConfigDefault = "Pas de %s dans le dépôt : configuration par défaut"
	// LogRepoConfigNote: what the configuration refused.
	LogRepoConfigNote = "Configuration du dépôt : %s"
	// LogRepoConfigInvalid: the error (naming the field and line).
	LogRepoConfigInvalid = "Configuration du dépôt invalide : %s"
	// LogConversationLoaded: messages, review comments, earlier CI failures.
	LogConversationLoaded = "Conversation chargée : %d message(s) — description, %d commentaire(s) de revue, %d échec(s) CI antérieur(s)"
	// LogDemoLLM: the file the demo provider changes.
	LogDemoLLM = "Fournisseur LLM de démonstration hors ligne : aucun LLM appelé, modification déterministe de %s (configurer ANTHROPIC_API_KEY ou OPENAI_API_KEY)"
	// LogCallingLLM: provider name, message count.
	LogCallingLLM = "Appel du LLM %s (%d message(s))..."
	// LogLLMUnusable: the parse error.
	LogLLMUnusable = "Réponse du LLM inutilisable (%v) : nouvelle demande"
	// LogAgentStarted: provider name, max steps, max tokens, max duration, max cost in USD.
	LogAgentStarted = "Agent de code %s : au plus %d étape(s), %d jetons, %s et %.2f USD pour le run"
	// LogAgentUsage: input tokens, output tokens, cost in USD of this call_llm, and of the run.
	LogAgentUsage = "Appels LLM de l'itération : %d jetons en entrée, %d en sortie, %.4f USD (run : %.4f USD)"
	// LogChangeApplied: summary, file count, comma-separated paths.
	LogChangeApplied = "Modification appliquée : %s (%d fichier(s) : %s)"
	// LogCommitPushed: short commit, branch.
	LogCommitPushed  = "Commit %s poussé sur la branche %s"
	LogCIUnsandboxed = "ATTENTION : la CI s'exécute sans bac à sable (TICKETFLOW_CI_SANDBOX=none) : elle voit les secrets et le réseau du processeur"
	// LogCISandboxNetwork, LogCISandbox: sandbox name.
	LogCISandboxNetwork = "CI dans le bac à sable %s, accès réseau autorisé pour ce dépôt"
	LogCISandbox        = "CI dans le bac à sable %s, sans accès réseau"
	// LogCICommand: the ticket's CI command.
	LogCICommand = "$ %s"
	// LogCITruncated: lines emitted, lines in all, bytes in all, artifact name.
	LogCITruncated = "Sortie de la CI tronquée : %d ligne(s) sur %d publiées (%d octets au total) ; sortie complète dans l'artefact %s"
	// LogCIPassed, LogCIFailed: exit code, duration in ms.
	LogCIPassed = "CI réussie (code %d, %d ms)"
	LogCIFailed = "CI en échec (code %d, %d ms)"
	// LogPROpened, LogPRReused: forge, PR number, URL.
	LogPROpened = "Pull request %s n°%d ouverte en brouillon : %s"
	LogPRReused = "Pull request %s n°%d déjà ouverte pour ce ticket, mise à jour : %s"
	// LogPRUpdated: PR number, iteration.
	LogPRUpdated = "Pull request n°%d mise à jour (itération %d)"
	// LogPRReady: PR number.
	LogPRReady = "Pull request n°%d prête pour la revue"
	// LogForgeFailed: forge, what failed, the error (redacted). The run goes on without it.
	LogForgeFailed = "Forge %s : %s a échoué (%v) ; le run continue sans"
	// ArtifactCut ends a CI output artifact cut at its bound: bound in bytes, lines kept,
	// lines in all, bytes in all.
	ArtifactCut = "[ticketflow] artefact coupé à %d octets : %d ligne(s) sur %d conservées (%d octets au total)\n"
)
