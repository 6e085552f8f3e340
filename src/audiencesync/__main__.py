from audiencesync.cli.main import main

main()
